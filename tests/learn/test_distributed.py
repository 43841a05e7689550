import re
import subprocess
import sys

from napari_hybridseg.learn.distributed import weights_digest
from napari_hybridseg.model.checkpoint import load_checkpoint


def test_pretrain_under_torchrun_keeps_both_ranks_identical(tiny_sample_root, tmp_path):
    out = tmp_path / "ddp.safetensors"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "napari_hybridseg.cli", "pretrain", "--data", str(tiny_sample_root), "--domain", "synth",
           "--split", "pool", "--steps", "3", "--batch-size", "2", "--crop", "32", "--base-channels", "8",
           "--device", "cpu", "--threads", "1", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    digests = dict(re.findall(r"weights-digest rank=(\d) sha256=([0-9a-f]{64})", proc.stdout))
    assert sorted(digests) == ["0", "1"], proc.stdout
    assert digests["0"] == digests["1"]
    model, meta = load_checkpoint(out)
    assert meta["pretraining"]["world_size"] == 2
    assert weights_digest(model) == digests["0"]
