"""proxy_core runs with msgspec as its only third-party package (an embedder's minimum)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import msgspec

SRC = Path(__file__).resolve().parents[3] / "src"

# Runs in a fresh interpreter that sees the standard library, src and msgspec only.
_PROGRAM = """
import asyncio, sys
from proxy_core import ChatRequest, ChatService, FakeRunner, InMemorySessionStore

async def main():
    service = ChatService(FakeRunner(), InMemorySessionStore())
    request = ChatRequest(model="sonnet", messages=[{"role": "user", "content": "hi"}])
    completion = await service.complete(request)
    await service.aclose()
    return completion.text

print(asyncio.run(main()))
third_party = {
    name.split(".")[0] for name, module in sys.modules.items()
    if getattr(module, "__file__", None) and "/only-msgspec/" in module.__file__
}
print(sorted(third_party))
"""


def test_proxy_core_imports_and_serves_with_only_msgspec_installed(tmp_path: Path) -> None:
    packages = tmp_path / "only-msgspec"
    packages.mkdir()
    (packages / "msgspec").symlink_to(Path(msgspec.__file__).parent)
    # -I: isolated, -S: no site-packages; PYTHONPATH is ignored under -I, so set sys.path.
    program = f"import sys; sys.path[:0] = [{str(SRC)!r}, {str(packages)!r}]\n" + _PROGRAM
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", program],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    reply, third_party = done.stdout.splitlines()
    assert reply  # the FakeRunner's scripted answer came through the service
    assert third_party == "['msgspec']"
