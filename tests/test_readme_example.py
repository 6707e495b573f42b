"""The README's Python API example runs as written (extracted from README.md, so the two cannot drift)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
HEADING = "Python API"
"""The README section whose first ```python block is the example."""


def python_example(markdown: str, heading: str = HEADING) -> str:
    """The first ```python code block of the section under the Markdown heading containing ``heading``."""
    lines = markdown.splitlines(keepends=True)
    in_fence, start = False, None
    for number, line in enumerate(lines):
        if line.startswith("```"):
            in_fence = not in_fence
        elif not in_fence and re.match(r"#+ ", line) and heading in line:
            start = number + 1
            break
    if start is None:
        raise LookupError(f"README.md has no heading containing {heading!r}")
    block: list[str] | None = None
    for line in lines[start:]:
        if block is None:
            if re.match(r"#+ ", line):
                break  # the next section began: no block in ours
            if line.strip() == "```python":
                block = []
        elif line.startswith("```"):
            return "".join(block)
        else:
            block.append(line)
    raise LookupError(f"README.md section {heading!r} has no ```python block")


def test_example_extraction_finds_the_block_of_the_right_section():
    text = "# T\n## Other\n```python\nwrong = 1\n```\n## The Python API\nprose\n```python\n# a comment\nright = 2\n```\n## Next\n"
    assert python_example(text) == "# a comment\nright = 2\n"
    with pytest.raises(LookupError, match="no heading"):
        python_example("## Nothing here\n")
    with pytest.raises(LookupError, match="no ```python block"):
        python_example("## Python API\ntext only\n## Next\n```python\nx = 1\n```\n")


def test_readme_python_api_example_runs(tmp_path, monkeypatch):
    code = python_example(README.read_text(encoding="utf-8"))
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__readme__"}
    exec(compile(code, f"{README}:{HEADING}", "exec"), namespace)  # noqa: S102 - our own README
    assert "out" in namespace, "the example should leave its EditResult in `out`"
    out = namespace["out"]
    assert out.image.shape[1] == 3 and out.views.shape[2] == 3 and out.depths.shape[2] == 1
    assert 0.0 <= float(out.image.min()) and float(out.image.max()) <= 1.0
    # the astronaut looks almost straight at the camera (the README's figure says yaw -1, pitch +3 degrees)
    portrait = namespace["portrait"]
    assert abs(portrait.yaw_deg) < 10 and abs(portrait.pitch_deg) < 15, (portrait.yaw_deg, portrait.pitch_deg)
    # the mesh the example writes is a PLY with a head's worth of vertices and faces, in the current folder
    ply = tmp_path / "head.ply"
    header = ply.read_bytes().split(b"end_header", 1)[0].decode("ascii")
    counts = dict(re.findall(r"element (vertex|face) (\d+)", header))
    assert header.startswith("ply") and int(counts["vertex"]) > 100 and int(counts["face"]) > 100, header
