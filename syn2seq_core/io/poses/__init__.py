"""Camera pose files: read the common formats into :class:`~syn2seq_core.geometry.Cameras`, write our own
``cameras.json``.

Here: one module per format, its layout and sources in its docstring (:mod:`.syn2seq`, :mod:`.re10k`,
:mod:`.colmap`, :mod:`.nerf`, :mod:`.egoexo4d_exo`, :mod:`.egoexo4d_aria`); :mod:`.registry`, the registry
``FORMATS`` (name -> :class:`~.registry.PoseFormat`: reader, detection, writer) and the entry points that consult
it; :mod:`.common`, what every reader shares (:class:`CameraTrack`, the checks, errors that name file and line).
Imports :mod:`syn2seq_core.base`, :mod:`syn2seq_core.geometry` and :mod:`syn2seq_core.io`.

Every reader returns cameras in the project's conventions (:mod:`syn2seq_core.base.conventions`): ``c2w [N, 4, 4]``
float64, OpenCV axes; ``K [N, 4]`` normalised ``(fx/W, fy/H, cx/W, cy/H)``; optional Kannala–Brandt
``fisheye [N, 4]`` (or FISHEYE624 ``[N, 12]``, the Aria RGB lens, see :mod:`syn2seq_core.geometry.plucker`).
Pixel coordinates follow COLMAP / NeRF: the image spans ``[0, W] x [0, H]`` and the centre of the top-left pixel
is ``(0.5, 0.5)``, so a centred principal point is ``cx = W / 2`` (this is the convention of our Plücker rays).
The Ego-Exo4D calibrations (projectaria_tools' convention, top-left pixel centre at ``(0, 0)``) are the one
exception shifted on reading, by :func:`~syn2seq_core.geometry.cameras.intrinsics_from_centre0`.

``format="auto"`` looks at the *content*, not the extension. For every format except ``re10k`` and
``egoexo4d_aria`` (whose files carry no size) the options ``width`` and ``height`` mean "the size of the frames I
will use": the cameras are resized to it, which leaves normalised intrinsics unchanged, and an aspect ratio that
differs by more than 1% is refused (a crop, not a resize, needs :meth:`Cameras.crop`). Timestamps and image names
live next to the cameras, not on them: :func:`load_camera_track` returns a :class:`CameraTrack` (cameras +
``timestamps`` in seconds + ``names``); :func:`load_cameras` returns just the :class:`Cameras`.

Adding a format: a module ``<format>.py`` with a reader ``read(path, within, *, <options>) -> CameraTrack`` (fill a
``common._Parsed`` and return ``common._finish(...)``, which checks the poses), a ``sniff(head)`` (and ``claims``
if its files name their format, ``in_folder`` if it lives in a folder), ending with
``register(PoseFormat(...))``; then import it below. The import order is the order of ``KNOWN_FORMATS`` and the
order sniffers are asked in.
"""

from . import syn2seq, re10k, colmap, nerf, egoexo4d_exo, egoexo4d_aria  # noqa: F401  (each registers its format)
from .common import DISTORTION_POLICIES, CameraTrack
from .egoexo4d_aria import ARIA_RGB_DEFAULT_K, ARIA_RGB_DEFAULT_SIZE
from .re10k import RE10K_DEFAULT_SIZE
from .registry import FORMATS, PoseFormat, detect_format, load_camera_track, load_cameras
from .syn2seq import SYN2SEQ_CONVENTION, SYN2SEQ_FILENAME, SYN2SEQ_FORMAT_ID, SYN2SEQ_FORMAT_VERSION, save_cameras

KNOWN_FORMATS = tuple(FORMATS)

__all__ = [
    "ARIA_RGB_DEFAULT_K", "ARIA_RGB_DEFAULT_SIZE", "DISTORTION_POLICIES", "FORMATS", "KNOWN_FORMATS",
    "RE10K_DEFAULT_SIZE", "SYN2SEQ_CONVENTION", "SYN2SEQ_FILENAME", "SYN2SEQ_FORMAT_ID", "SYN2SEQ_FORMAT_VERSION",
    "CameraTrack", "PoseFormat", "detect_format", "load_camera_track", "load_cameras", "save_cameras",
]
