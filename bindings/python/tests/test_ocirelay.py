"""The package against real registries on loopback (tests/registry.py)."""

import json
import unittest

import ocirelay
from registry import Registry, sha256

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def push_image(client, host, repo, platform, layer_text):
    """An image of one layer for `platform` (os, arch[, variant]); its
    index entry."""
    os_, arch, *variant = platform
    layer = layer_text.encode()
    config = json.dumps({"architecture": arch, "os": os_, "variant": variant[0] if variant else None,
                         "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    for blob in (layer, config):
        client.ensure_blob(f"{host}/{repo}@{sha256(blob)}", blob)
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(config),
                   "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha256(layer),
                    "size": len(layer)}],
    }).encode()
    d = client.ensure_manifest(f"{host}/{repo}@{sha256(manifest)}", manifest, OCI_MANIFEST)
    entry_platform = {"os": os_, "architecture": arch}
    if variant:
        entry_platform["variant"] = variant[0]
    return {"mediaType": d.media_type, "digest": d.digest, "size": d.size, "platform": entry_platform}


class OcirelayTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.a = Registry()
        cls.b = Registry()
        client = ocirelay.Client()
        images = [push_image(client, cls.a.host, "app", ("linux", "amd64"), "amd64 layer"),
                  push_image(client, cls.a.host, "app", ("linux", "arm64", "v8"), "arm64 layer")]
        index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": images}).encode()
        cls.index = client.ensure_manifest(f"{cls.a.host}/app:v1", index, OCI_INDEX)
        assert cls.index.digest == sha256(index)

    @classmethod
    def tearDownClass(cls):
        cls.a.stop()
        cls.b.stop()

    def test_references_parse_with_docker_hub_rules(self):
        self.assertEqual(ocirelay.parse_ref("hello-world:latest"),
                         ocirelay.Reference("docker.io", "library/hello-world", "latest", None))
        with self.assertRaises(ocirelay.InvalidReferenceError) as caught:
            ocirelay.parse_ref("Bad/Name")
        self.assertIn("Bad/Name", str(caught.exception))
        self.assertEqual(caught.exception.kind, "invalid-reference")

    def test_lookup_by_head_and_get_checks_content(self):
        client = ocirelay.Client()
        head = client.lookup(f"{self.a.host}/app:v1", head=True)
        self.assertEqual(head.descriptor.digest, self.index.digest)
        self.assertTrue(head.descriptor_json().startswith('{\n\t"mediaType": '))
        got = client.lookup(f"{self.a.host}/app:v1")
        self.assertEqual(sha256(got.bytes()), self.index.digest)
        manifest = client.manifest(f"{self.a.host}/app:v1")
        image = client.manifest(f"{self.a.host}/app@{manifest['manifests'][0]['digest']}")
        blob = client.lookup(f"{self.a.host}/app@{image['layers'][0]['digest']}", type="blob")
        self.assertEqual(blob.bytes(), b"amd64 layer")

    def test_synthesize_index_of_a_multi_platform_index(self):
        index = ocirelay.Client().synthesize_index(f"{self.a.host}/app:v1")
        self.assertEqual(index["schemaVersion"], 2)
        platforms = [f"{m['platform']['os']}/{m['platform']['architecture']}" for m in index["manifests"]]
        self.assertEqual(platforms, ["linux/amd64", "linux/arm64"])

    def test_list_tags_gives_every_tag_or_none(self):
        client = ocirelay.Client()
        client.copy(f"{self.a.host}/app:v1", f"{self.a.host}/app:v2")
        self.assertEqual(sorted(client.list_tags(f"{self.a.host}/app")), ["v1", "v2"])
        self.assertEqual(sorted(client.list_tags(f"{self.a.host}/app", page_size=1)), ["v1", "v2"])
        self.assertIsNone(client.list_tags(f"{self.a.host}/nothing"))

    def test_copy_across_two_registries_keeps_the_digest(self):
        client = ocirelay.Client()
        pushed = client.copy(f"{self.a.host}/app:v1", f"{self.b.host}/copied:v1")
        self.assertEqual(pushed.digest, self.index.digest)
        there = client.lookup(f"{self.b.host}/copied:v1", head=True)
        self.assertEqual(there.descriptor.digest, self.index.digest)

    def test_a_large_layer_goes_up_in_the_chunks_the_uploads_setting_asks_for(self):
        big = (b"a layer sent in chunks" * 150000)[: 3 << 20]
        ocirelay.Client().ensure_blob(f"{self.a.host}/big@{sha256(big)}", big)
        chunked = ocirelay.Client(uploads={"*": {"chunk_size": 1 << 20, "monolithic_up_to": 1 << 20}})
        d = chunked.copy_blob(f"{self.a.host}/big@{sha256(big)}", f"{self.b.host}/big")
        self.assertEqual((d.digest, d.size), (sha256(big), len(big)))
        there = ocirelay.Client().lookup(f"{self.b.host}/big@{sha256(big)}", type="blob")
        self.assertEqual(sha256(there.bytes()), sha256(big))
        # A rule that names no registry is bad input, said on the first call.
        nameless = ocirelay.Client(uploads={"": {"chunk_size": 1 << 20}})
        with self.assertRaises(ocirelay.OcirelayError) as e:
            nameless.copy_blob(f"{self.a.host}/big@{sha256(big)}", f"{self.b.host}/big")
        self.assertEqual(e.exception.kind, "invalid-input")
        self.assertIn("upload rule names no registry", str(e.exception))

    def test_copy_with_platforms_pushes_an_index_of_its_own(self):
        client = ocirelay.Client()
        cut = client.copy(f"{self.a.host}/app:v1", f"{self.b.host}/arm:v1", platforms=["linux/arm64"])
        self.assertNotEqual(cut.digest, self.index.digest)
        there = client.manifest(f"{self.b.host}/arm:v1")
        self.assertEqual([m["platform"]["architecture"] for m in there["manifests"]], ["arm64"])
        again = ocirelay.Client().copy(f"{self.a.host}/app:v1", f"{self.b.host}/arm:v1", platforms=["linux/arm64"])
        self.assertEqual(again.digest, cut.digest)
        for kwargs in ({"platforms": ["linux"]}, {"platforms": ["linux/arm64"], "referrers": True}):
            with self.assertRaises(ocirelay.OcirelayError) as caught:
                client.copy(f"{self.a.host}/app:v1", f"{self.b.host}/arm:v1", **kwargs)
            self.assertEqual(caught.exception.kind, "invalid-input")

    def test_a_registry_that_cannot_be_reached_is_a_transport_error(self):
        with self.assertRaises(ocirelay.TransportError) as caught:
            ocirelay.Client().lookup("127.0.0.1:1/app:v1", head=True)
        self.assertIn("127.0.0.1:1", str(caught.exception))

    def test_what_does_not_exist_is_none_to_look_up_and_not_found_to_copy(self):
        client = ocirelay.Client()
        self.assertIsNone(client.lookup(f"{self.a.host}/app:missing"))
        self.assertIsNone(client.synthesize_index(f"{self.a.host}/nothing:here"))
        with self.assertRaises(ocirelay.NotFoundError):
            client.copy(f"{self.a.host}/app:missing", f"{self.b.host}/app:missing")

    def test_list_referrers_reads_the_fallback_tag_and_filters(self):
        client = ocirelay.Client()
        # A repository of its own: the fallback tag is a tag like any other.
        client.copy(f"{self.a.host}/app:v1", f"{self.a.host}/signed:v1")
        empty, signature = b"{}", b"a signature of the index"
        for blob in (empty, signature):
            client.ensure_blob(f"{self.a.host}/signed@{sha256(blob)}", blob)
        artifact_type = "application/vnd.dev.cosign.artifact.sig.v1+json"
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": artifact_type,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha256(empty), "size": 2},
            "layers": [{"mediaType": "application/octet-stream", "digest": sha256(signature),
                        "size": len(signature)}],
            "subject": {"mediaType": self.index.media_type, "digest": self.index.digest, "size": self.index.size},
        }).encode()
        sig = client.ensure_manifest(f"{self.a.host}/signed@{sha256(manifest)}", manifest, OCI_MANIFEST)
        listing = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
            {"mediaType": sig.media_type, "digest": sig.digest, "size": sig.size, "artifactType": artifact_type}]})
        tag = self.index.digest.replace(":", "-")
        client.ensure_manifest(f"{self.a.host}/signed:{tag}", listing, OCI_INDEX)

        found = ocirelay.Client().list_referrers(f"{self.a.host}/signed:v1")
        self.assertEqual(found.source, "fallback-tag")
        self.assertEqual([(d.digest, d.artifact_type) for d in found.manifests], [(sig.digest, artifact_type)])
        self.assertEqual(found.index["mediaType"], OCI_INDEX)
        filtered = ocirelay.Client().list_referrers(f"{self.a.host}/signed:v1", artifact_type="application/spdx+json")
        self.assertEqual(filtered.manifests, [])
        self.assertIsNone(ocirelay.Client().list_referrers(f"{self.a.host}/signed:missing"))

        # Copied with what refers to it: listed at the destination too.
        ocirelay.Client().copy(f"{self.a.host}/signed:v1", f"{self.b.host}/signed:v1", referrers=True)
        there = ocirelay.Client().list_referrers(f"{self.b.host}/signed:v1")
        self.assertEqual([d.digest for d in there.manifests], [sig.digest])
        again = ocirelay.Client().copy_referrers(f"{self.a.host}/signed:v1", f"{self.b.host}/signed:v1")
        self.assertEqual((len(again.copied), again.tags, again.skipped), (1, [], []))

    def test_deploy_runs_the_deploy_tool_input(self):
        client = ocirelay.Client()
        import base64
        data = base64.b64encode(b"deployed from python").decode()
        inputs = [
            {"type": "blob", "refs": [f"{self.b.host}/deployed-py"], "data": data},
            {"type": "manifest", "refs": [f"{self.b.host}/deployed-py:v1"],
             "lookup": {"": f"{self.a.host}/app:v1"}},
        ]
        results = client.deploy(inputs, parallel=True)
        self.assertEqual([r.outcome for r in results], ["deployed", "deployed"])
        self.assertEqual(results[1].descriptor.digest, self.index.digest)
        again = ocirelay.Client().deploy(inputs, dry_run=True)
        self.assertEqual([r.outcome for r in again], ["up-to-date", "up-to-date"])
        with self.assertRaises(ocirelay.InvalidInputError) as caught:
            client.deploy([{"type": "image", "refs": ["x"]}])
        self.assertIn("input 1", str(caught.exception))
        missing = [{"type": "blob", "refs": [f"{self.b.host}/x"],
                    "lookup": {"": f"{self.a.host}/nothing@sha256:" + "0" * 64}}]
        failed = client.deploy(missing)
        self.assertEqual(failed[0].outcome, "failed")
        self.assertIsInstance(failed[0].error, ocirelay.OcirelayError)

    def test_sync_copies_what_changed_and_goes_on_past_failures(self):
        client = ocirelay.Client()
        config = {self.a.host: {"images": {"app": ["v1", "gone"]}}}
        results = client.sync(config, destination=f"{self.b.host}/synced-py")
        self.assertEqual([r.outcome for r in results], ["copied", "failed"])
        self.assertGreater(results[0].bytes_sent, 0)
        self.assertGreater(results[0].requests, 2)
        self.assertEqual(results[0].destination, f"{self.b.host}/synced-py/app:v1")
        self.assertEqual(results[0].descriptor.digest, self.index.digest)
        self.assertIsInstance(results[1].error, ocirelay.NotFoundError)
        again = client.sync(config, destination=f"{self.b.host}/synced-py", dry_run=True, shard=(0, 1))
        self.assertEqual([r.outcome for r in again], ["unchanged", "failed"])
        with self.assertRaises(ocirelay.InvalidInputError) as caught:
            client.sync({self.a.host: {"imagez": {}}}, destination=self.b.host)
        self.assertIn("imagez", str(caught.exception))


if __name__ == "__main__":
    unittest.main()
