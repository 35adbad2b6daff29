"""ComfyUI entry point of the Syn2Seq node pack. No work happens at import: nodes import lazily."""

WEB_DIRECTORY = "./web"


async def comfy_entrypoint():
    from .nodes import Syn2SeqExtension

    return Syn2SeqExtension()


__all__ = ["WEB_DIRECTORY", "comfy_entrypoint"]
