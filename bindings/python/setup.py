"""The build refuses to make a package without the component: one that
imported and failed only at `Client()` would reach users. Everything else
is in pyproject.toml."""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

COMPONENT = Path(__file__).parent / "src" / "ocirelay" / "ocirelay.wasm"


class BuildWithComponent(build_py):
    def run(self) -> None:
        if not COMPONENT.is_file():
            raise SystemExit(
                f"ocirelay: {COMPONENT} is missing: build it (cargo build --locked -p ocirelay, "
                "in the repository) and copy target/component/ocirelay.wasm there first"
            )
        super().run()


setup(cmdclass={"build_py": BuildWithComponent})
