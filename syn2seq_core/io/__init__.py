"""Files in and out: video decoding and writing (:mod:`.video`), outputs that appear whole or not at all
(:mod:`.atomic`), paths kept inside their folder (:mod:`.safe_paths`), camera pose files in every supported format
(:mod:`.poses`) and structure from motion on a video file (:mod:`.camera_estimation`). Imports :mod:`..base` and
:mod:`..geometry`."""
