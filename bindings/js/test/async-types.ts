// Type-checked, never run (`tsc -p test`): the async API's calls with the
// types async.d.ts gives them.

import { Client, OcirelayError, parseRef, supported, type Descriptor, type Found } from 'ocirelay/async';

export async function everyAsyncCall(body: ReadableStream<Uint8Array>): Promise<void> {
  const ok: boolean = supported;
  const client = new Client({ insecureRegistries: ['registry.internal:5000'] });
  const ref = await parseRef('registry.internal:5000/team/app:v1');
  const found: Found | null = await client.lookup(ref, { type: 'blob' });
  if (found) {
    const chunk: Uint8Array = await found.read(1024);
    for await (const part of found) void part;
    const stream: ReadableStream<Uint8Array> = found.stream();
    void [chunk, stream, await found.bytes(), await found.descriptorJson()];
  }
  const tags: string[] | null = await client.listTags('registry.internal:5000/team/app');
  const copied: Descriptor = await client.copy(ref, 'registry.internal:5000/team/copy:v1', { referrers: true });
  const writer = await client.pushBlob('registry.internal:5000/team/app@sha256:' + '0'.repeat(64), 3);
  await body.pipeTo(writer.stream());
  const pushed: Descriptor = await writer.finish();
  const results = await client.deploy([{ type: 'blob', refs: ['registry.internal:5000/x'], data: 'eA==' }]);
  try {
    await client.synthesizeIndex(ref);
  } catch (e) {
    if (e instanceof OcirelayError) void e.kind;
  }
  void [ok, tags, copied, pushed, results];
  // @ts-expect-error: a call's answer is a promise, not a descriptor
  const wrong: Descriptor = client.copyBlob(ref, ref);
  void wrong;
}
