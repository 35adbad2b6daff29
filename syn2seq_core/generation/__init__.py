"""From a model and cameras to frames: the ``[source | transition | target]`` sequence (:mod:`.sequence`), the
loaded model and its sampling (:mod:`.pipeline`), Exo2Ego / Ego2Exo on a take (:mod:`.takes`) and image-to-video
along a camera track (:mod:`.image2video`). Imports :mod:`..dfot`, :mod:`..metrics`, :mod:`..io`,
:mod:`..geometry`, :mod:`..base`."""
