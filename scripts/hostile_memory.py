"""Peak memory of preprocessing hostile images, each in a fresh process (docs/RELIABILITY.md).

    python scripts/hostile_memory.py          # prints one JSON line per case, with the machine

Cases: a 2-frame 6300x6300 animated PNG (216 KB on disk), the largest animation accepted
(4000x4000), a 9500x9500 PNG sent as a drawing, and a phone's largest photo (a 48 MP JPEG).
The figure is the growth of the process's peak resident memory (VmHWM, reset after importing and reading the file).
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def animated_png(side: int = 6300) -> bytes:
    from PIL import Image

    frames = [Image.new("RGBA", (side, side), (0, 0, 0, 255)) for _ in range(2)]
    frames[0].paste((255, 255, 255, 255), (side // 4, side // 4, 3 * side // 4, 3 * side // 4))
    buf = io.BytesIO()
    frames[0].save(buf, "PNG", save_all=True, append_images=frames[1:])
    return buf.getvalue()


def big_drawing(side: int = 9500) -> bytes:
    from PIL import Image

    img = Image.new("RGBA", (side, side), (0, 0, 0, 255))
    img.paste((255, 255, 255, 255), (side // 3, side // 3, 2 * side // 3, 2 * side // 3))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def photo_48mp() -> bytes:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    a = rng.integers(200, 216, (6000, 8000, 3), dtype=np.uint8)
    a[1000:4000, 3000:5000] = 40
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "JPEG", quality=60)
    return buf.getvalue()


CASES = {
    "animated_png_6300": animated_png,
    "animated_png_4000": lambda: animated_png(4000),
    "drawing_9500": big_drawing,
    "photo_48mp_jpeg": photo_48mp,
}


def _hwm_kb() -> int:
    status = Path("/proc/self/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")))


def _measure(case: str, path: str) -> None:
    """Child: import, note the peak, preprocess the file, print the peak's growth."""
    from fmnist import preprocess as pp

    data = Path(path).read_bytes()
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM): exec keeps the parent's
    base = _hwm_kb()
    kw = {"max_pixels": pp.CANVAS_MAX_PIXELS if case.startswith("drawing") else pp.MAX_PIXELS}
    try:
        pp.preprocess(data, **kw if hasattr(pp, "CANVAS_MAX_PIXELS") else {})
        outcome = "processed"
    except pp.ImageError as e:
        outcome = f"refused: {e}"
    except Exception as e:  # the point of the "before" figures: what escaped
        outcome = f"uncaught {type(e).__name__}: {str(e)[:80]}"
    peak = _hwm_kb()
    print(
        json.dumps(
            {"case": case, "bytes": len(data), "peak_growth_mb": round((peak - base) / 1024, 1), "outcome": outcome}
        )
    )


def main() -> None:
    import tempfile

    from fmnist.runtime import machine

    print(json.dumps({"machine": machine()}))
    with tempfile.TemporaryDirectory() as d:
        for case, make in CASES.items():
            f = Path(d) / case
            f.write_bytes(make())
            subprocess.run([sys.executable, __file__, "--child", case, str(f)], check=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        _measure(sys.argv[2], sys.argv[3])
    else:
        main()
