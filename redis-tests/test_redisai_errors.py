"""RedisAI 1.2.7's AI.* error texts, byte for byte: one table row per text (or per distinct path
to a text), sent over a raw socket so that no client rewrites the error line.

Every expected text is copied from RedisAI's source at tag v1.2.7 (commit 1bf38d8): src/redisai.c,
src/config/config.c, src/redis_ai_objects/{tensor,model}.c, src/backends/onnxruntime.c and
src/execution/parsing/*.c (dag_parser.c, deprecated.c, model_commands_parser.c,
tensor_commands_parsing.c, parse_utils.c), plus src/execution/DAG/{dag,dag_execute}.c for the
reply of a DAG whose model op failed. The analysis is in /work/notes/redisai-errors.md.

Conventions these rows rely on:
  * RedisModule_ReplyWithError sends its text as written: texts without "ERR " (ONNX Runtime's
    messages, "Number of keys given as INPUTS ...", DAG op texts) go out without it.
  * RedisModule_WrongArity follows Redis 7: the lower-case registered name
    ("ERR wrong number of arguments for 'ai.tensorget' command"). The texts RedisAI hard-codes
    keep their upper-case names: AI.MODELEXECUTE, AI.MODELRUN, AI.DAGRUN(_RO) ("wrong number of
    arguments") and AI.DAGEXECUTE(_RO) ("missing arguments").
  * Every AI.* command has arity -1 in RedisAI, so inside MULTI nothing is refused at queue time;
    MODELEXECUTE, MODELRUN and the DAG commands answer the transaction text in EXEC before they
    look at their arguments.
  * ONNX Runtime texts: RedisAI 1.2.7 ships ORT 1.11, Locus loads a newer ORT. Texts that are the
    same in both are pinned exactly; where they differ only a stable fragment is pinned (OrtText),
    together with "no ERR prefix" and "no CR/LF" (RedisAI turns them into spaces).

Not pinned here, on purpose (Locus extensions): UINT32/UINT64/FLOAT16/BFLOAT16 dtypes, INPUTS /
OUTPUTS name binding in AI.MODELSTORE for ONNX, negative INT* VALUES, RESP3 maps, AI.TENSOROP /
TENSORSTACK / TENSORFROMHASH, AI.SCRIPT* answering that scripts are replaced by ONNX graphs,
TIMEOUT answering TIMEDOUT mid-run, and runs dropped when their model is deleted while queued.
Also left out: texts that depend on the machine (GPU without CUDA) or that RedisAI can only reach
with models of five or more inputs.
"""

import functools
import os

import pytest

from conftest import ErrorReply, MODULE_TARGET

MODELS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "models")


def _read(name):
    with open(os.path.join(MODELS, name), "rb") as f:
        return f.read()


ADD = _read("add.onnx")  # c = a + b, inputs a, b FLOAT [N, 2], output c


@functools.lru_cache(maxsize=None)
def external_initializer_model():
    """y = x + w where the initializer w lives in an external file 'w.bin' (never written).
    IR 7 / opset 13 so that RedisAI's ORT 1.11 would load it too."""
    pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    w = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[2],
                    data_location=TensorProto.EXTERNAL)
    for k, v in (("location", "w.bin"), ("offset", "0"), ("length", "8")):
        entry = w.external_data.add()
        entry.key, entry.value = k, v
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"])], "external_initializer",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])],
        [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name="locus-tests")
    model.ir_version = 7
    return model.SerializeToString()


@functools.lru_cache(maxsize=None)
def fixed_batch_model():
    """y = Identity(x) with x FLOAT [2]: a fixed batch dimension, like RedisAI's
    tests/flow/test_data/batchdim_mismatch.onnx."""
    pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])], "fixed_batch",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name="locus-tests")
    model.ir_version = 7
    return model.SerializeToString()


# ---------------------------------------------------------------- expected-value helpers

WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"
TENSOR_EMPTY = "ERR tensor key is empty or in a different shard"
MODEL_EMPTY = "ERR model key is empty"
IN_MULTI = "ERR Cannot run RedisAI command within a transaction or a LUA script"
INPUTS_MISMATCH = "Number of keys given as INPUTS here does not match model definition"
OUTPUTS_MISMATCH = "Number of keys given as OUTPUTS here does not match model definition"
UNEXPECTED = "ERR Invalid DAG command. Unexpected argument:  "  # two spaces, then the word as typed
DTYPE_INT32_FOR_FLOAT = "Unexpected input data type. Actual: (tensor(int32)) , expected: (tensor(float))"


def arity(name):
    """RedisModule_WrongArity on Redis 7: the lower-case registered command name."""
    return f"ERR wrong number of arguments for '{name}' command"


class OrtText:
    """An error that is ONNX Runtime's own message, passed through: no 'ERR ' prefix, no CR/LF,
    and containing every fragment (the rest of the wording depends on the ORT version)."""

    def __init__(self, *fragments):
        self.fragments = fragments

    def __call__(self, reply):
        if not isinstance(reply, ErrorReply):
            return False
        text = str(reply)
        return (not text.startswith("ERR ") and "\n" not in text and "\r" not in text
                and all(f in text for f in self.fragments))

    def __repr__(self):
        return f"OrtText{self.fragments!r}"


class Multi:
    """The commands are sent inside MULTI; the reply checked is EXEC's array."""

    def __init__(self, *cmds):
        self.cmds = cmds


# ---------------------------------------------------------------- setup snippets

ADD_MODEL = ("AI.MODELSTORE", "add", "ONNX", "CPU", "BLOB", ADD)
FIXED_MODEL = ("AI.MODELSTORE", "fixed", "ONNX", "CPU", "BLOB", fixed_batch_model)
T_A = ("AI.TENSORSET", "a", "FLOAT", 1, 2, "VALUES", 1, 2)
T_B = ("AI.TENSORSET", "b", "FLOAT", 1, 2, "VALUES", 3, 4)
T_I = ("AI.TENSORSET", "i", "INT32", 1, 2, "VALUES", 1, 2)  # right shape, wrong dtype for add
T_R = ("AI.TENSORSET", "r", "FLOAT", 2, "VALUES", 1, 2)  # rank 1: wrong rank for add
T_A2 = ("AI.TENSORSET", "a2", "FLOAT", 2, 2)  # batch 2
T_B3 = ("AI.TENSORSET", "b3", "FLOAT", 3, 2)  # batch 3
T_3 = ("AI.TENSORSET", "t3", "FLOAT", 3, "VALUES", 1, 2, 3)  # 3 rows for the fixed [2] model
STRING_KEY = ("SET", "s", "x")

RUN_ADD = ("AI.MODELEXECUTE", "add", "INPUTS", 2, "a", "a", "OUTPUTS", 1, "c")

# ---------------------------------------------------------------- the table
# (id, setup commands, command, expected)
#   expected: str       -> the reply is an error whose line is exactly this text
#             list      -> the reply is an array; elements rendered as "-err" / "+status" /
#                          bytes / int / list, or an OrtText check
#             OrtText   -> ONNX Runtime's text (see the class)

ROWS = [
    # ---- AI.TENSORSET (redisai.c:74-105, tensor_commands_parsing.c:6-81, tensor.c)
    ("tensorset_arity", (), ("AI.TENSORSET", "t", "FLOAT"), arity("ai.tensorset")),
    ("tensorset_wrongtype", (STRING_KEY,), ("AI.TENSORSET", "s", "FLOAT", 1), WRONGTYPE),
    ("tensorset_bad_type", (), ("AI.TENSORSET", "t", "NOTATYPE", 1), "ERR invalid data type"),
    ("tensorset_dim_not_integer", (), ("AI.TENSORSET", "t", "FLOAT", "x"),
     "ERR invalid or negative value found in tensor shape"),
    ("tensorset_blob_without_data", (), ("AI.TENSORSET", "t", "FLOAT", 1, "BLOB"),
     "ERR a single binary string should come after the BLOB argument in 'AI.TENSORSET' command"),
    ("tensorset_blob_two_args", (), ("AI.TENSORSET", "t", "FLOAT", 2, "BLOB", b"\0" * 4, b"\0" * 4),
     "ERR a single binary string should come after the BLOB argument in 'AI.TENSORSET' command"),
    ("tensorset_values_count", (), ("AI.TENSORSET", "t", "FLOAT", 2, "VALUES", 1),
     "ERR wrong number of values was given in 'AI.TENSORSET' command"),
    ("tensorset_blob_length", (), ("AI.TENSORSET", "t", "FLOAT", 2, "BLOB", b"\0" * 4),
     "ERR data length does not match tensor shape and type"),
    ("tensorset_bool_blob", (), ("AI.TENSORSET", "t", "BOOL", 2, "BLOB", b"\x02\x01"),
     "ERR BOOL tensor elements must be 0 or 1"),
    ("tensorset_string_blob", (), ("AI.TENSORSET", "t", "STRING", 2, "BLOB", b"a\0b"),
     "ERR Number of string elements in data blob does not match tensor length"),
    ("tensorset_float_value", (), ("AI.TENSORSET", "t", "FLOAT", 1, "VALUES", "abc"),
     "ERR invalid value"),
    ("tensorset_string_value_inner_nul", (), ("AI.TENSORSET", "t", "STRING", 1, "VALUES", b"a\0b"),
     "ERR C-string value contains null character"),

    # ---- AI.TENSORGET (redisai.c:110-133, tensor_commands_parsing.c:88-117)
    ("tensorget_arity_long", (T_A,), ("AI.TENSORGET", "a", "META", "BLOB", "VALUES"),
     arity("ai.tensorget")),
    ("tensorget_empty_key_before_format", (), ("AI.TENSORGET", "nokey", "FOO"), TENSOR_EMPTY),
    ("tensorget_wrongtype", (STRING_KEY,), ("AI.TENSORGET", "s", "FOO"), WRONGTYPE),
    ("tensorget_bad_format", (T_A,), ("AI.TENSORGET", "a", "FOO"), "ERR unsupported data format"),
    ("tensorget_blob_and_values", (T_A,), ("AI.TENSORGET", "a", "BLOB", "VALUES"),
     "ERR both BLOB and VALUES specified"),

    # ---- AI.MODELSTORE (redisai.c:148-386; options in the fixed order TAG, BATCHSIZE,
    #      MINBATCHSIZE, MINBATCHTIMEOUT, then BLOB)
    ("modelstore_arity", (), ("AI.MODELSTORE", "m", "ONNX", "BLOB", ADD), arity("ai.modelstore")),
    ("modelstore_backend", (), ("AI.MODELSTORE", "m", "CAFFE", "CPU", "BLOB", ADD),
     "ERR unsupported backend"),
    ("modelstore_device", (), ("AI.MODELSTORE", "m", "ONNX", "TPU", "BLOB", ADD),
     "ERR Invalid DEVICE"),
    ("modelstore_device_ten_chars", (), ("AI.MODELSTORE", "m", "ONNX", "CPU:123456", "BLOB", ADD),
     "ERR Invalid DEVICE"),
    ("modelstore_batchsize", (), ("AI.MODELSTORE", "m", "ONNX", "CPU", "BATCHSIZE", "x", "BLOB", ADD),
     "ERR Invalid argument for BATCHSIZE"),
    ("modelstore_minbatchsize", (),
     ("AI.MODELSTORE", "m", "ONNX", "CPU", "BATCHSIZE", 4, "MINBATCHSIZE", "x", "BLOB", ADD),
     "ERR Invalid argument for MINBATCHSIZE"),
    ("modelstore_minbatchsize_without_batchsize", (),
     ("AI.MODELSTORE", "m", "ONNX", "CPU", "MINBATCHSIZE", 2, "BLOB", ADD),
     "ERR MINBATCHSIZE specified without BATCHSIZE"),
    ("modelstore_minbatchtimeout", (),
     ("AI.MODELSTORE", "m", "ONNX", "CPU", "BATCHSIZE", 4, "MINBATCHSIZE", 2,
      "MINBATCHTIMEOUT", "x", "BLOB", ADD),
     "ERR Invalid argument for MINBATCHTIMEOUT"),
    ("modelstore_minbatchtimeout_without_minbatchsize", (),
     ("AI.MODELSTORE", "m", "ONNX", "CPU", "BATCHSIZE", 4, "MINBATCHTIMEOUT", 100, "BLOB", ADD),
     "ERR MINBATCHTIMEOUT specified without MINBATCHSIZE"),
    ("modelstore_unknown_word", (), ("AI.MODELSTORE", "m", "ONNX", "CPU", "FOO", "BLOB", ADD),
     "ERR Invalid argument, expected BLOB"),
    ("modelstore_tf_without_inputs", (), ("AI.MODELSTORE", "m", "TF", "CPU", "BLOB", ADD),
     "ERR INPUTS not specified for TF"),
    ("modelstore_torch_backend_not_loadable", (), ("AI.MODELSTORE", "m", "TORCH", "CPU", "BLOB", ADD),
     "ERR Could not load backend"),
    # ORT's load errors go out as ORT wrote them, without "ERR " (onnxruntime.c:411-412).
    ("modelstore_not_protobuf", (), ("AI.MODELSTORE", "m", "ONNX", "CPU", "BLOB", b"not a model"),
     "Failed to load model because protobuf parsing failed."),
    ("modelstore_no_graph", (), ("AI.MODELSTORE", "m", "ONNX", "CPU", "BLOB", b"\x08\x07"),
     "No graph was found in the protobuf."),
    ("modelstore_external_initializer", (),
     ("AI.MODELSTORE", "m", "ONNX", "CPU", "BLOB", external_initializer_model),
     "Initializer tensors with external data is not allowed."),
    # The key type is checked only after the model was built (redisai.c:360-374).
    ("modelstore_wrongtype", (STRING_KEY,), ("AI.MODELSTORE", "s", "ONNX", "CPU", "BLOB", ADD),
     WRONGTYPE),
    ("modelstore_bad_blob_before_wrongtype", (STRING_KEY,),
     ("AI.MODELSTORE", "s", "ONNX", "CPU", "BLOB", b"not a model"),
     "Failed to load model because protobuf parsing failed."),

    # ---- AI.MODELSET (deprecated.c:116-340)
    ("modelset_arity", (), ("AI.MODELSET", "m", "ONNX"), arity("ai.modelset")),
    ("modelset_no_blob", (), ("AI.MODELSET", "m", "ONNX", "CPU"),
     "ERR Insufficient arguments, missing model BLOB"),
    ("modelset_device_keyword", (), ("AI.MODELSET", "m", "ONNX", "BLOB", ADD), "ERR Invalid DEVICE"),
    ("modelset_unsupported_device", (), ("AI.MODELSET", "m", "ONNX", "TPU", "BLOB", ADD),
     "ERR unsupported device"),
    ("modelset_minbatchtimeout_without_batchsize", (),
     ("AI.MODELSET", "m", "ONNX", "CPU", "MINBATCHTIMEOUT", 10, "BLOB", ADD),
     "ERR MINBATCHTIMEOUT specified without BATCHSIZE"),

    # ---- AI.MODELGET / AI.MODELDEL / AI._MODELSCAN (redisai.c:388-555)
    ("modelget_arity_long", (ADD_MODEL,), ("AI.MODELGET", "add", "META", "BLOB", "X"),
     arity("ai.modelget")),
    ("modelget_empty_key_before_options", (), ("AI.MODELGET", "nokey", "FOO"), MODEL_EMPTY),
    ("modeldel_arity", (), ("AI.MODELDEL", "m", "x"), arity("ai.modeldel")),
    ("modelscan_arity", (), ("AI._MODELSCAN", "x"), arity("ai._modelscan")),

    # ---- AI.INFO (redisai.c:853-906): run stats are looked up by name, never by key type
    ("info_arity_long", (ADD_MODEL,), ("AI.INFO", "add", "RESETSTAT", "x"), arity("ai.info")),
    ("info_tensor_key", (T_A,), ("AI.INFO", "a"), "ERR cannot find run info for key"),

    # ---- AI.CONFIG (redisai.c:913-957, config.c:88-111)
    ("config_unknown_subcommand", (), ("AI.CONFIG", "FOO"), "ERR unsupported subcommand"),
    ("config_backendspath_missing", (), ("AI.CONFIG", "BACKENDSPATH"),
     "ERR BACKENDSPATH: missing path argument"),
    ("config_chunk_size_missing", (), ("AI.CONFIG", "MODEL_CHUNK_SIZE"),
     "ERR MODEL_CHUNK_SIZE: missing chunk size"),
    ("config_chunk_size_invalid", (), ("AI.CONFIG", "MODEL_CHUNK_SIZE", 0),
     "ERR MODEL_CHUNK_SIZE: invalid chunk size"),
    ("config_loadbackend_arity", (), ("AI.CONFIG", "LOADBACKEND", "ONNX"), arity("ai.config")),
    ("config_loadbackend_unknown", (), ("AI.CONFIG", "LOADBACKEND", "CAFFE", "/nonexistent/x.so"),
     "ERR unsupported backend"),
    ("config_loadbackend_tf", (),
     ("AI.CONFIG", "LOADBACKEND", "TF", "/nonexistent/redisai_tensorflow.so"),
     "ERR error loading backend"),
    ("config_get_arity", (), ("AI.CONFIG", "GET"), arity("ai.config")),

    # ---- AI.MODELEXECUTE (model_commands_parser.c:7-120), model add(a, b) -> c
    ("modelexecute_arity", (), ("AI.MODELEXECUTE", "add", "INPUTS", 2, "a", "a", "OUTPUTS"),
     "ERR wrong number of arguments for 'AI.MODELEXECUTE' command"),
    ("modelexecute_inputs_not_specified", (ADD_MODEL,),
     ("AI.MODELEXECUTE", "add", "NOTINPUTS", 2, "a", "a", "OUTPUTS", 1, "c"), "ERR INPUTS not specified"),
    ("modelexecute_input_count_not_integer", (ADD_MODEL,),
     ("AI.MODELEXECUTE", "add", "INPUTS", "x", "a", "a", "OUTPUTS", 1, "c"),
     "ERR Invalid argument for input_count"),
    ("modelexecute_input_count_zero", (ADD_MODEL,),
     ("AI.MODELEXECUTE", "add", "INPUTS", 0, "OUTPUTS", 1, "c", "d"),
     "ERR Input count must be a positive integer"),
    ("modelexecute_inputs_mismatch", (ADD_MODEL,),
     ("AI.MODELEXECUTE", "add", "INPUTS", 1, "a", "OUTPUTS", 1, "c"), INPUTS_MISMATCH),
    ("modelexecute_outputs_not_specified", (ADD_MODEL,),
     ("AI.MODELEXECUTE", "add", "INPUTS", 2, "a", "a", "NOTOUTPUTS", 1, "c"), "ERR OUTPUTS not specified"),
    ("modelexecute_output_count_not_integer", (ADD_MODEL,),
     ("AI.MODELEXECUTE", "add", "INPUTS", 2, "a", "a", "OUTPUTS", "x", "c"),
     "ERR Invalid argument for output_count"),
    ("modelexecute_output_count_zero", (ADD_MODEL,),
     ("AI.MODELEXECUTE", "add", "INPUTS", 2, "a", "a", "OUTPUTS", 0, "c"),
     "ERR Output count must be a positive integer"),
    ("modelexecute_outputs_mismatch", (ADD_MODEL,),
     ("AI.MODELEXECUTE", "add", "INPUTS", 2, "a", "a", "OUTPUTS", 2, "c", "d"), OUTPUTS_MISMATCH),
    ("modelexecute_output_keys_missing", (ADD_MODEL,),
     ("AI.MODELEXECUTE", "add", "INPUTS", 2, "a", "a", "OUTPUTS", 1),
     "ERR number of output keys to AI.MODELEXECUTE command does not match the number of given arguments"),
    ("modelexecute_timeout_no_value", (ADD_MODEL, T_A), RUN_ADD + ("TIMEOUT",),
     "ERR No value provided for TIMEOUT"),
    ("modelexecute_timeout_not_integer", (ADD_MODEL, T_A), RUN_ADD + ("TIMEOUT", "x"),
     "ERR Invalid value for TIMEOUT"),
    ("modelexecute_invalid_argument", (ADD_MODEL, T_A), RUN_ADD + ("foo",), "Invalid argument: foo"),
    # No pre-check in RedisAI: ONNX Runtime validates the inputs and its text goes out as is.
    ("modelexecute_input_dtype", (ADD_MODEL, T_A, T_I),
     ("AI.MODELEXECUTE", "add", "INPUTS", 2, "i", "a", "OUTPUTS", 1, "c"), DTYPE_INT32_FOR_FLOAT),
    ("modelexecute_input_rank", (ADD_MODEL, T_A, T_R),
     ("AI.MODELEXECUTE", "add", "INPUTS", 2, "r", "a", "OUTPUTS", 1, "c"),
     OrtText("Invalid rank for input: a Got: 1 Expected: 2 Please fix either the inputs")),
    ("modelexecute_batch_dim_mismatch", (FIXED_MODEL, T_3),
     ("AI.MODELEXECUTE", "fixed", "INPUTS", 1, "t3", "OUTPUTS", 1, "y"),
     OrtText("Got invalid dimensions for input: x for the following indices", "index: 0 Got: 3 Expected: 2")),
    ("modelexecute_runtime_error", (ADD_MODEL, T_A2, T_B3),
     ("AI.MODELEXECUTE", "add", "INPUTS", 2, "a2", "b3", "OUTPUTS", 1, "c"),
     OrtText("Non-zero status code returned while running Add node")),

    # ---- AI.MODELRUN (deprecated.c:18-114)
    ("modelrun_arity", (), ("AI.MODELRUN", "add", "INPUTS", "a", "OUTPUTS"),
     "ERR wrong number of arguments for 'AI.MODELRUN' command"),
    ("modelrun_no_outputs_word", (ADD_MODEL,), ("AI.MODELRUN", "add", "TIMEOUT", 100, "INPUTS", "a", "a"),
     OUTPUTS_MISMATCH),

    # ---- DAG headers (dag_parser.c:240-388, deprecated.c:649-689)
    ("dagexecute_missing_arguments", (), ("AI.DAGEXECUTE", "LOAD", 1, "a", "|>"),
     "ERR missing arguments for 'AI.DAGEXECUTE' command"),
    ("dagexecute_ro_missing_arguments", (), ("AI.DAGEXECUTE_RO", "ROUTING", "a", "|>", "AI.TENSORGET"),
     "ERR missing arguments for 'AI.DAGEXECUTE_RO' command"),
    ("dagrun_arity", (), ("AI.DAGRUN", "|>", "AI.TENSORGET"),
     "ERR wrong number of arguments for 'AI.DAGRUN' command"),
    ("dagrun_ro_arity", (), ("AI.DAGRUN_RO", "|>"),
     "ERR wrong number of arguments for 'AI.DAGRUN_RO' command"),
    ("dag_load_missing_arguments", (), ("AI.DAGEXECUTE", "PERSIST", 1, "x", "LOAD", 1),
     "ERR missing arguments after LOAD keyword in DAG command"),
    ("dag_load_count_invalid", (), ("AI.DAGEXECUTE", "LOAD", "notnumber", "|>", "AI.TENSORGET", "a"),
     "ERR invalid or negative value found in number of keys to LOAD"),
    ("dag_load_count_too_big", (T_A, T_B, T_I), ("AI.DAGEXECUTE", "LOAD", 4, "a", "b", "i"),
     "ERR number of keys to LOAD into DAG does not match the number of given arguments"),
    ("dag_load_key_missing", (), ("AI.DAGEXECUTE", "LOAD", 1, "nokey", "|>", "AI.TENSORGET", "nokey"),
     TENSOR_EMPTY),
    ("dag_persist_in_read_only", (),
     ("AI.DAGEXECUTE_RO", "PERSIST", 1, "x", "|>", "AI.TENSORSET", "x", "FLOAT", 1),
     "ERR PERSIST cannot be specified in a read-only DAG"),
    ("dag_persist_missing_arguments", (T_A,), ("AI.DAGEXECUTE", "LOAD", 1, "a", "PERSIST", 1),
     "ERR missing arguments after PERSIST keyword in DAG command"),
    ("dag_persist_count_invalid", (),
     ("AI.DAGEXECUTE", "PERSIST", "x", "y", "|>", "AI.TENSORSET", "y", "FLOAT", 1),
     "ERR invalid or negative value found in number of keys to PERSIST"),
    ("dag_persist_keys_not_unique", (),
     ("AI.DAGEXECUTE", "PERSIST", 2, "y", "y", "|>", "AI.TENSORSET", "y", "FLOAT", 1),
     "ERR PERSIST keys must be unique"),
    ("dag_persist_count_too_big", (), ("AI.DAGEXECUTE", "PERSIST", 5, "x", "y", "z"),
     "ERR number of keys to PERSIST after DAG execution does not match the number of given arguments"),
    ("dag_routing_missing_value", (T_A, T_B), ("AI.DAGEXECUTE", "LOAD", 2, "a", "b", "ROUTING"),
     "ERR Missing ROUTING value"),
    ("dag_timeout_missing_value", (T_A, T_B), ("AI.DAGEXECUTE", "LOAD", 2, "a", "b", "TIMEOUT"),
     "ERR No value provided for TIMEOUT"),
    ("dag_unexpected_argument", (T_A,),
     ("AI.DAGEXECUTE", "LOAD", 1, "a", "bad_arg", "|>", "AI.TENSORGET", "a"), UNEXPECTED + "bad_arg"),
    ("dag_repeated_keyword", (T_A,),
     ("AI.DAGEXECUTE", "LOAD", 1, "a", "load", 1, "a", "|>", "AI.TENSORGET", "a"), UNEXPECTED + "load"),
    ("dag_trailing_chain_operator", (T_A,),
     ("AI.DAGEXECUTE", "LOAD", 1, "a", "|>", "AI.TENSORGET", "a", "|>"), UNEXPECTED + "|>"),
    ("dag_routing_swallows_chain_operator", (),
     ("AI.DAGEXECUTE", "ROUTING", "|>", "AI.TENSORSET", "x", "FLOAT", 1), UNEXPECTED + "AI.TENSORSET"),
    ("dag_without_routing_load_persist", (),
     ("AI.DAGEXECUTE", "TIMEOUT", 100, "|>", "AI.TENSORSET", "x", "FLOAT", 1),
     "ERR AI.DAGEXECUTE and AI.DAGEXECUTE_RO commands must contain at least one out of "
     "ROUTING, LOAD, PERSIST keywords"),
    ("dag_empty", (T_A, T_B, T_I), ("AI.DAGEXECUTE", "LOAD", 3, "a", "b", "i"), "ERR DAG is empty"),

    # ---- DAG ops, parse time: the whole reply is the error (dag_parser.c:165-238, deprecated.c:575-647)
    ("dag_empty_op", (T_A,), ("AI.DAGEXECUTE", "LOAD", 1, "a", "|>", "|>", "AI.TENSORGET", "a"),
     "Unsupported command within DAG"),
    ("dag_op_tensorget_arity", (T_A,), ("AI.DAGEXECUTE", "LOAD", 1, "a", "|>", "AI.TENSORGET"),
     "wrong number of arguments for 'AI.TENSORGET' command"),
    ("dag_op_tensorset_arity", (), ("AI.DAGEXECUTE", "PERSIST", 1, "x", "|>", "AI.TENSORSET", "x", "FLOAT"),
     "wrong number of arguments for 'AI.TENSORSET' command"),
    ("dag_op_modelexecute_arity", (ADD_MODEL, T_A),
     ("AI.DAGEXECUTE", "LOAD", 1, "a", "|>", "AI.MODELEXECUTE", "add", "INPUTS", 2, "a", "a", "OUTPUTS"),
     "ERR wrong number of arguments for 'AI.MODELEXECUTE' command"),
    ("dag_op_modelexecute_timeout", (ADD_MODEL, T_A),
     ("AI.DAGEXECUTE", "LOAD", 1, "a", "|>") + RUN_ADD + ("TIMEOUT", 100),
     "ERR TIMEOUT not allowed within a DAG command"),
    ("dag_op_modelrun_in_dagexecute", (ADD_MODEL, T_A),
     ("AI.DAGEXECUTE", "LOAD", 1, "a", "|>", "AI.MODELRUN", "add", "INPUTS", "a", "a", "OUTPUTS", "c"),
     "Deprecated AI.MODELRUN cannot be used in AI.DAGEXECUTE command"),
    ("dag_op_scriptrun_in_dagexecute", (T_A,),
     ("AI.DAGEXECUTE", "LOAD", 1, "a", "|>", "AI.SCRIPTRUN", "script", "fn", "INPUTS", "a"),
     "Deprecated AI.SCRIPTRUN cannot be used in AI.DAGEXECUTE command"),
    ("dag_op_scriptexecute_in_read_only", (T_A,),
     ("AI.DAGEXECUTE_RO", "LOAD", 1, "a", "|>", "AI.SCRIPTEXECUTE", "script", "fn", "INPUTS", 1, "a"),
     "ERR AI.SCRIPTEXECUTE command cannot be specified in a read-only DAG"),
    ("dag_op_modelexecute_in_dagrun", (ADD_MODEL, T_A),
     ("AI.DAGRUN", "LOAD", 1, "a", "|>") + RUN_ADD,
     "AI.MODELEXECUTE cannot be used in a deprecated AI.DAGRUN command"),
    ("dag_op_scriptexecute_in_dagrun", (T_A,),
     ("AI.DAGRUN", "LOAD", 1, "a", "|>", "AI.SCRIPTEXECUTE", "script", "fn", "INPUTS", 1, "a"),
     "AI.SCRIPTEXECUTE cannot be used in a deprecated AI.DAGRUN command"),
    ("dag_input_not_in_dag", (ADD_MODEL, T_A, T_B),
     ("AI.DAGEXECUTE", "LOAD", 1, "a", "|>", "AI.MODELEXECUTE", "add", "INPUTS", 2, "a", "b",
      "OUTPUTS", 1, "c"),
     "ERR INPUT key cannot be found in DAG"),
    ("dag_persist_not_in_dag", (T_A,),
     ("AI.DAGEXECUTE", "LOAD", 1, "a", "PERSIST", 1, "zz", "|>", "AI.TENSORGET", "a"),
     "ERR PERSIST key cannot be found in DAG"),

    # ---- DAG ops, run time: a failed model op is its own array element, no ERR added; later model
    #      ops and tensors that were never produced are +NA, TENSORSET ops stay +OK and tensors that
    #      exist are still returned (dag.c:534-613).
    ("dag_run_error_element", (ADD_MODEL, T_A, T_I),
     ("AI.DAGEXECUTE", "LOAD", 2, "i", "a",
      "|>", "AI.MODELEXECUTE", "add", "INPUTS", 2, "i", "a", "OUTPUTS", 1, "c",
      "|>", "AI.MODELEXECUTE", "add", "INPUTS", 2, "a", "a", "OUTPUTS", 1, "d",
      "|>", "AI.TENSORSET", "z", "FLOAT", 1,
      "|>", "AI.TENSORGET", "a", "META",
      "|>", "AI.TENSORGET", "c"),
     ["-" + DTYPE_INT32_FOR_FLOAT, "+NA", "+OK", [b"dtype", b"FLOAT", b"shape", [1, 2]], "+NA"]),
    ("dag_run_batch_dim_mismatch_element", (FIXED_MODEL, T_3),
     ("AI.DAGEXECUTE", "LOAD", 1, "t3",
      "|>", "AI.MODELEXECUTE", "fixed", "INPUTS", 1, "t3", "OUTPUTS", 1, "y",
      "|>", "AI.TENSORGET", "y"),
     [OrtText("Got invalid dimensions for input: x for the following indices"), "+NA"]),

    # ---- MULTI/EXEC: the run commands refuse first, whatever their arguments
    #      (command_parser.c:14-18); other AI.* commands run normally inside EXEC.
    ("multi_modelexecute_short", (), Multi(("AI.MODELEXECUTE", "nokey")), ["-" + IN_MULTI]),
    ("multi_dagrun_ro_short", (), Multi(("AI.DAGRUN_RO",)), ["-" + IN_MULTI]),
    ("multi_tensorset_then_modelexecute", (ADD_MODEL,),
     Multi(T_A, RUN_ADD, ("AI.TENSORGET", "a", "VALUES")), ["+OK", "-" + IN_MULTI, [b"1", b"2"]]),
    ("multi_tensorget_empty_key", (), Multi(("AI.TENSORGET", "nokey")), ["-" + TENSOR_EMPTY]),
    ("multi_tensorset_arity", (), Multi(("AI.TENSORSET", "t", "FLOAT")), ["-" + arity("ai.tensorset")]),
]

_ids = [row[0] for row in ROWS]
assert len(_ids) == len(set(_ids)), "duplicate row ids"


# ---------------------------------------------------------------- the runner


def _args(cmd):
    """Arguments as sent: callables (lazily built model blobs) are called."""
    return [a() if callable(a) else a for a in cmd]


def render(reply):
    """A reply in the notation of the table: errors '-text', status replies '+text'."""
    if isinstance(reply, ErrorReply):
        return "-" + str(reply)
    if isinstance(reply, str):
        return "+" + reply
    if isinstance(reply, list):
        return [render(x) for x in reply]
    return reply


def matches(expected, reply):
    if isinstance(expected, OrtText):
        return expected(reply)
    if isinstance(expected, list):
        return (isinstance(reply, list) and len(reply) == len(expected)
                and all(matches(e, r) for e, r in zip(expected, reply)))
    return render(reply) == expected


@pytest.mark.parametrize("setup, command, expected", [pytest.param(*row[1:], id=row[0]) for row in ROWS])
def test_redisai_error_text(raw, setup, command, expected):
    if MODULE_TARGET and "_MODELSCAN" in str(command).upper():
        pytest.skip("AI._MODELSCAN scans the whole keyspace: locus-server only")
    conn = raw()
    assert conn.cmd("FLUSHALL") == "OK"
    for cmd in setup:
        reply = conn.cmd(*_args(cmd))
        assert not isinstance(reply, ErrorReply), f"setup {cmd[:3]} failed: {reply}"

    if isinstance(command, Multi):
        assert conn.cmd("MULTI") == "OK"
        for cmd in command.cmds:
            queued = conn.cmd(*_args(cmd))
            assert queued == "QUEUED", f"{cmd[:2]} was not queued: {render(queued)!r}"
        reply = conn.cmd("EXEC")
    else:
        reply = conn.cmd(*_args(command))

    if isinstance(expected, str):
        assert isinstance(reply, ErrorReply), f"expected an error, got {render(reply)!r}"
        assert str(reply) == expected
    else:
        assert matches(expected, reply), f"got {render(reply)!r}, expected {expected!r}"


def test_string_value_may_end_with_one_nul(raw):
    """The accepted counterpart of tensorset_string_value_*: RedisAI keeps a VALUES string whose
    last byte is a single NUL as the C string before it (tensor.c:65-75)."""
    conn = raw()
    assert conn.cmd("FLUSHALL") == "OK"
    assert conn.cmd("AI.TENSORSET", "t", "STRING", 2, "VALUES", b"abc\0", b"de") == "OK"
    assert conn.cmd("AI.TENSORGET", "t", "VALUES") == [b"abc", b"de"]
    assert conn.cmd("AI.TENSORGET", "t", "BLOB") == b"abc\0de\0"
