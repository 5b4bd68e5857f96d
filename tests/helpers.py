"""Tiny models and tokenizers for fast tests."""

from rlhflab.config import ModelSpec
from rlhflab.models import build_llama, train_tokenizer

TEXTS = [
    "SUBREDDIT: r/work\nPOST: my boss cut my hours. I feel anxious. should I quit?\nTL;DR: my boss cut my hours",
    "SUBREDDIT: r/pets\nPOST: my dog chewed through the sofa. I am furious.\nTL;DR: my dog chewed the sofa",
    "ARTICLE: the city council approved a new budget. residents were pleased.",
] * 20


def tiny_model_and_tokenizer(seed: int = 0, layers: int = 2):
    import torch

    torch.manual_seed(seed)
    tok = train_tokenizer(TEXTS, vocab_size=300, min_frequency=1)
    spec = ModelSpec(hidden_size=32, num_layers=layers, num_heads=2, num_kv_heads=2, intermediate_size=64)
    return build_llama(spec, tok), tok


def run_stage_on(stage, cfg, run_dir, out):
    """One stage's run on another run's upstream artefacts (the wanted ones it finds too), its output in `out`."""
    from rlhflab.cache_key import ConfigView
    from rlhflab.pipeline import StageContext, process_state

    out.mkdir(parents=True, exist_ok=True)  # every rank of a multi-process run makes it
    inputs = stage.needs(cfg) + [w for w in stage.wants(cfg) if (run_dir / w).is_dir()]
    ctx = StageContext(ConfigView(cfg, stage.reads, stage.name), stage, out, run_dir, process_state(),
                       tuple(inputs), key="rerun-test")
    return stage.run(ctx)


def run_killed_in_step(trainer_module: str, trainer_class: str, sets: list[str], until: str, step: int = 6):
    """`rlhflab run quickstart --until <until>` with `sets`, in a subprocess whose trainer SIGKILLs
    its own process when it starts step `step`; returns the finished process."""
    import os
    import subprocess
    import sys

    killer = (
        "import os, signal\n"
        "from rlhflab.config import load_config\n"
        "from rlhflab.pipeline import run_pipeline\n"
        f"from rlhflab.{trainer_module} import {trainer_class} as T\n"
        "from rlhflab.stages import REGISTRY\n"
        "step_fn = T.train_step\n"
        "def train_step(self, step):\n"
        f"    if step == {step}:\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "    return step_fn(self, step)\n"
        "T.train_step = train_step\n"
        f"run_pipeline(load_config('quickstart', {sets!r}), REGISTRY, until={until!r})\n")
    return subprocess.run([sys.executable, "-c", killer], env={**os.environ, "HF_HUB_OFFLINE": "1"},
                          capture_output=True, text=True)


def send_json(handler, status: int, payload) -> None:
    """Answer an http.server request with `payload` as JSON (the test endpoints' replies)."""
    import json

    data = json.dumps(payload).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


def serving(handler_class, path: str = ""):
    """A local HTTP server on a free port for a test endpoint: yields its base URL (+ `path`)."""
    import threading
    from http.server import ThreadingHTTPServer

    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler_class)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}{path}"
    finally:
        srv.shutdown()
