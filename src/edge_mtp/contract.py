"""The export format contract: every name and convention that exporters and runtimes must agree on.

One leaf module (it imports nothing of edge-mtp), so the exporter, the backends, `inspect`, `verify`
and `bench` cannot drift apart. The contract itself is described in docs/bundle.md.

LiteRT `.litertlm` bundle (LiteRT-LM's Gemma 4 split layout, which its engine requires for MTP):

    tf_lite_embedder            embedder:            token_ids [1,1] int32 -> embeddings [1,1,H]
    tf_lite_per_layer_embedder  per_layer_embedder:  token_ids [1,1] int32 -> per_layer_embeddings [1,1,L,P]
    tf_lite_prefill_decode      prefill_<N>, decode, verify:
                                embeddings [1,T,H], per_layer_embeddings [1,T,L,P], input_pos [T] int32,
                                kv_cache_k_<i> [1,N,S,D], kv_cache_v_<i> [1,N,D,S] (i = KV-producing layers)
                             -> kv_cache_* (same names); decode/verify also logits [1,T,V], activations [1,T,H]
    tf_lite_mtp_drafter         mtp_drafter: activations [1,1,2H], input_pos [1] int32, mask [1,1,1,S] bool,
                                the two store layers' kv_cache_* (read-only) -> logits [1,1,V],
                                projected_activations [1,1,H]

ONNX export (a directory or .zip): embedder.onnx, per_layer_embedder.onnx, target.onnx (one graph with a
dynamic token axis for prefill/decode/verify; ONNX forbids an output named like an input, so the
updated cache is `out_kv_cache_*`), drafter.onnx; big graphs keep their weights in `<graph>.onnx.data`.
Both carry `manifest.json` (our manifest) and `tokenizer.json`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

MANIFEST_FORMAT = "edge-mtp-bundle/1"
MANIFEST_FILE = "manifest.json"
TOKENIZER_FILE = "tokenizer.json"

# ---- LiteRT sections and signatures ---------------------------------------------------------------
EMBEDDER = "tf_lite_embedder"
PER_LAYER_EMBEDDER = "tf_lite_per_layer_embedder"
PREFILL_DECODE = "tf_lite_prefill_decode"
MTP_DRAFTER = "tf_lite_mtp_drafter"
SECTIONS = (EMBEDDER, PER_LAYER_EMBEDDER, PREFILL_DECODE, MTP_DRAFTER)
EMBEDDING_SECTIONS = (EMBEDDER, PER_LAYER_EMBEDDER)

SIG_EMBEDDER = "embedder"
SIG_PER_LAYER_EMBEDDER = "per_layer_embedder"
SIG_DECODE = "decode"
SIG_VERIFY = "verify"
SIG_DRAFTER = "mtp_drafter"
# Ours, beside LiteRT-LM's `mtp_drafter` in the same section (same weights): the centroid head's candidates
# only, which the runtime places into the full vocabulary (docs/bundle.md#drafter-candidates).
SIG_DRAFTER_CANDIDATES = "mtp_drafter_candidates"
PREFILL_PREFIX = "prefill_"


def prefill_signature(tokens: int) -> str:
    return f"{PREFILL_PREFIX}{tokens}"


def prefill_length(signature: str) -> int | None:
    """N of a `prefill_<N>` signature, else None."""
    rest = signature.removeprefix(PREFILL_PREFIX)
    return int(rest) if rest != signature and rest.isdigit() else None


# ---- ONNX graphs ----------------------------------------------------------------------------------
ONNX_EMBEDDER, ONNX_PER_LAYER_EMBEDDER = "embedder", "per_layer_embedder"
ONNX_TARGET, ONNX_DRAFTER = "target", "drafter"
ONNX_GRAPHS = (ONNX_EMBEDDER, ONNX_PER_LAYER_EMBEDDER, ONNX_TARGET, ONNX_DRAFTER)
ONNX_OUTPUT_PREFIX = "out_"


def onnx_output(name: str) -> str:
    """The output carrying the updated `name` (ONNX forbids outputs named like inputs)."""
    return ONNX_OUTPUT_PREFIX + name


def onnx_data_file(graph: Path) -> Path:
    """Where a graph's external weights live: `<graph>.onnx.data` (the name torch.onnx and onnxruntime use)."""
    return graph.with_name(graph.name + ".data")


# ---- tensor names ---------------------------------------------------------------------------------
TOKEN_IDS = "token_ids"
EMBEDDINGS = "embeddings"
PER_LAYER_EMBEDDINGS = "per_layer_embeddings"
INPUT_POS = "input_pos"
LOGITS = "logits"
ACTIVATIONS = "activations"
MASK = "mask"
PROJECTED_ACTIVATIONS = "projected_activations"
CANDIDATE_IDS = "candidate_ids"  # [1, 1, N] int32 token ids of the top-k clusters
CANDIDATE_LOGITS = "candidate_logits"  # [1, 1, N] their logits; every other token's is min(candidates) - 1
KV_PREFIX = "kv_cache_"
# Graphs are converted with their weights as inputs `weights_<key>`; the exporter then turns those inputs
# into constants (quantized tensor by tensor), so no finished export has an input with this prefix.
WEIGHTS_PREFIX = "weights_"
# A LiteRT drafter section with a centroid head stores the drafter's token table (module key DRAFTER_TABLE)
# with its rows in cluster order: row j holds token TOKEN_ORDERING[j] (docs/bundle.md#drafter-token-table).
# The section's manifest recipe records it as RECIPE_ROW_ORDER: {checkpoint tensor: ordering tensor}.
DRAFTER_TABLE = "model.embed_tokens.weight"
TOKEN_ORDERING = "masked_embedding.token_ordering"
RECIPE_ROW_ORDER = "row_order"


def kv_name(kind: str, layer: int) -> str:
    """`kv_cache_k_<layer>` / `kv_cache_v_<layer>`."""
    return f"{KV_PREFIX}{kind}_{layer}"


def is_kv(name: str) -> bool:
    return name.startswith(KV_PREFIX) or name.startswith(ONNX_OUTPUT_PREFIX + KV_PREFIX)


# ---- identities -----------------------------------------------------------------------------------
def model_id(manifest_bytes: bytes) -> str:
    """The id traces carry for an export: the manifest records every section's sha256, so this names
    the exact bytes that ran."""
    return "sha256:" + hashlib.sha256(manifest_bytes).hexdigest()[:16]


def file_sha256(path: Path, block: int = 1 << 20) -> str:
    """sha256 of a file, read in blocks (sections of a full-size bundle are gigabytes)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(block), b""):
            digest.update(chunk)
    return digest.hexdigest()


# ---- reading a .tflite section without running it --------------------------------------------------------
def _tflite(data):
    from ai_edge_litert import schema_py_generated as schema

    return schema, schema.Model.GetRootAs(data, 0)


def tflite_signatures(data) -> dict[str, dict[str, dict[str, tuple[list[int], str]]]]:
    """{signature: {"inputs" / "outputs": {tensor name: (shape, dtype name)}}} of a `.tflite` model, read
    from its flatbuffer alone (`data`: bytes, or a memoryview of a mapped file: no weight is touched)."""
    schema, model = _tflite(data)
    types = {v: k.lower() for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    out = {}
    for i in range(model.SignatureDefsLength()):
        sig = model.SignatureDefs(i)
        graph = model.Subgraphs(sig.SubgraphIndex())

        def side(count, get):
            tensors = {}
            for j in range(count):
                tm = get(j)
                t = graph.Tensors(tm.TensorIndex())
                tensors[tm.Name().decode()] = ([int(d) for d in t.ShapeAsNumpy()] if t.ShapeLength() else [],
                                               types.get(t.Type(), str(t.Type())))
            return tensors

        out[sig.SignatureKey().decode()] = {"inputs": side(sig.InputsLength(), sig.Inputs),
                                            "outputs": side(sig.OutputsLength(), sig.Outputs)}
    return out


def tflite_weight_bytes(data) -> dict[str, int]:
    """Bytes of constant tensor data per tensor type (FLOAT32, INT8, INT4, ...) in a `.tflite` model;
    each buffer counted once (signatures share weights)."""
    schema, model = _tflite(data)
    names = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    sizes: dict[str, int] = {}
    seen = set()
    for g in range(model.SubgraphsLength()):
        graph = model.Subgraphs(g)
        for t in range(graph.TensorsLength()):
            tensor = graph.Tensors(t)
            buffer = model.Buffers(tensor.Buffer())
            size = buffer.DataLength() or buffer.Size()
            if size and tensor.Buffer() not in seen:
                seen.add(tensor.Buffer())
                kind = names.get(tensor.Type(), str(tensor.Type()))
                sizes[kind] = sizes.get(kind, 0) + size
    return sizes
