"""The Syn2Seq ComfyUI nodes (V3 API, ``comfy_api.latest``).

Each node is a thin wrapper over one ``syn2seq_core`` function: convert ComfyUI types (``convert.py``),
call the core, convert back. The nodes import the core beside them relatively (``from ..syn2seq_core.x import
y``): ComfyUI loads the pack as a package named after its folder's path, so the core is
``<pack>.syn2seq_core`` there, never the absolute ``syn2seq_core`` a pip install of the pack provides (no file
is loaded twice under two names). Importing this package is cheap: it registers the ``models/syn2seq`` folder,
defines classes and imports only the core's standard-library modules (``base``, ``io.safe_paths``); the rest of
the core, torch included, loads when node schemas list the core's registries or when a node runs.
"""

from comfy_api.latest import ComfyExtension, io

from . import (camera_paths, cameras, estimate_cameras, evaluate, interpolation, management, model, paths, sequence, takes,
               wan_camera)

paths.register_model_folder()

NODES: list[type[io.ComfyNode]] = [
    *takes.NODES,
    *cameras.NODES,
    *camera_paths.NODES,
    *estimate_cameras.NODES,
    *wan_camera.NODES,
    *interpolation.NODES,
    *sequence.NODES,
    *model.NODES,
    *evaluate.NODES,
]


class Syn2SeqExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        # ComfyUI 0.3.64 calls this once while loading packs, before the server adds its routes (it never calls
        # ComfyExtension.on_load), so the pack's route is registered here.
        management.register_routes()
        return NODES


__all__ = ["NODES", "Syn2SeqExtension"]
