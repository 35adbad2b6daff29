"""TensorBoard of a resumed run (issue 29.4): the steps a killed run logged past its last checkpoint are redone
on resume, and TensorBoard, like metrics.jsonl, then holds one value per step.

The reference DFoT logs to Weights & Biases (``utils/wandb_utils.py`` of fork ktncktnc/diffusion-forcing-
transformer @ a3a0e70; Lightning's logger), with no TensorBoard to compare; ``purge_step`` is
``torch.utils.tensorboard.SummaryWriter``'s own answer to a restart.
"""

import pytest

from syn2seq_core.training.checkpoints import load_checkpoint
from syn2seq_core.training.config import load_config
from syn2seq_core.training.loop import train

from .test_train import read_log, write_config

pytestmark = pytest.mark.usefixtures("one_thread")


def test_a_resumed_run_logs_each_step_once_to_tensorboard(tmp_path):
    """A run checkpoints at step 2, logs step 3 and dies before its next checkpoint; the restart redoes step 3.
    The event files then hold steps 1..4 once each, with the values of metrics.jsonl (which is cut back to the
    checkpoint on resume): the restarted writer purges the events after the checkpoint's step."""
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = load_config(write_config(tmp_path, "finetune", steps=4, every=2))
    out = tmp_path / "run"
    train(cfg, out, max_steps=3, progress=False, final_checkpoint=False)  # killed after logging step 3
    assert load_checkpoint(out)["step"] == 2
    assert [r["step"] for r in read_log(out)] == [1, 2, 3]
    train(cfg, out, progress=False)
    log = read_log(out)
    assert [r["step"] for r in log] == [1, 2, 3, 4]
    events = EventAccumulator(str(out / "tensorboard")).Reload()
    for tag in ("loss/total", "optim/lr", "optim/grad_norm"):
        assert [e.step for e in events.Scalars(tag)] == [1, 2, 3, 4], tag
    assert [e.value for e in events.Scalars("loss/total")] == pytest.approx([r["loss"] for r in log], rel=1e-6)
