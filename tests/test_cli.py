"""The ``bitlet`` command line: every sub-command on the simulator."""
from __future__ import annotations

import json
import subprocess
import sys
import warnings

import numpy as np
import onnx
import pytest
from bitlet.demo import load_frames, model_path
from bitlet.drivers.sim import SimDevice
from bitlet.runtime.agent import Agent
from bitlet.tools import cli
from bitlet.tools.imaging import read_image
from models import espcn_nhw
from test_agent_weights import explicit  # each shape compiled explicitly: the reference

pytestmark = pytest.mark.device
SMALL = ["--shape", "lr=1,1,12,12"]


# (tests/test_cli_inputs.py uses the same helper)
def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_python_m_bitlet_version():
    proc = subprocess.run([sys.executable, "-m", "bitlet", "--version"], capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 0
    assert proc.stdout.startswith("bitlet ")


def test_info_json_reports_the_id_registers(capsys):
    from bitlet import hw

    code, out, _ = run(capsys, "info", "--device", "sim", "--json")
    assert code == 0
    info = json.loads(out)
    ident = info["kernel"]["identity"]
    assert ident["magic"] == hw.MAGIC and ident["version"] == hw.ISA_VERSION
    assert ident["kind"] == "bitlet" and ident["n_pe"] == hw.N_PE
    assert info["registers"]["ID_MAGIC"] == f"0x{hw.MAGIC:08x}"


def test_run_writes_outputs_equal_to_the_runtime(tmp_path, capsys):
    x = np.random.default_rng(1).random((1, 1, 12, 12), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    code, out, _ = run(capsys, "run", str(model_path()), "--input", str(tmp_path / "x.npy"),
                       "--output", str(tmp_path / "y.npy"), "--device", "sim")
    assert code == 0, out
    y = np.load(tmp_path / "y.npy")
    assert y.shape == (1, 1, 36, 36) and y.dtype == np.float32

    import bitlet

    with bitlet.open("sim") as dev:
        expected = bitlet.compile(str(model_path()), device=dev, input_shapes={"lr": x.shape})(x)
    assert np.array_equal(y.view(np.uint32), np.asarray(expected).view(np.uint32))


def test_profile_json_has_layers_and_totals(capsys):
    code, out, _ = run(capsys, "profile", str(model_path()), *SMALL, "--json")
    assert code == 0
    prof = json.loads(out)
    assert [layer["op"] for layer in prof["layers"]] == ["BitletConv"] * 3
    total = prof["totals"]
    assert total["kernel_cycles"] == sum(layer["kernel_cycles"] for layer in prof["layers"])
    assert total["macs"] == 12 * 12 * (25 * 64 + 9 * 64 * 32 + 9 * 32 * 9)


def test_bench_compares_both_kernels_on_the_same_layers(capsys):
    code, out, _ = run(capsys, "bench", "--json", *SMALL,
                       "--model", str(model_path()))
    assert code == 0
    result = json.loads(out)
    assert result["timing"] == "modelled (simulator)"
    assert [row["name"] for row in result["layers"]]
    for row in result["layers"]:
        assert row["bitlet_cycles"] > 0 and row["vendor_fp_cycles"] > 0
        assert row["speedup"] == pytest.approx(row["vendor_fp_cycles"] / row["bitlet_cycles"])
    for kind in ("bitlet", "vendor_fp"):
        assert result["accuracy"][kind]["rel_l2"] < 1e-5


def test_demo_writes_images_and_beats_bicubic(tmp_path, capsys):
    code, out, _ = run(capsys, "demo", "--frames", "1", "--out", str(tmp_path), "--json")
    assert code == 0
    result = json.loads(out)
    frame = result["frames"][0]
    assert frame["psnr_bitlet_db"] > frame["psnr_bicubic_db"]
    assert frame["psnr_vs_onnxruntime_db"] > 100  # fp32 Bitlet within truncation of onnxruntime
    assert frame["predicted_fps"] == pytest.approx(200e6 / frame["kernel_cycles"])
    image = read_image(result["outputs"][0])
    hr = load_frames()["hr_y"][0]
    assert image.shape == (hr.shape[0], 3 * hr.shape[1], 3)


def test_missing_model_is_a_clear_error(capsys, tmp_path):
    code, _, err = run(capsys, "profile", str(tmp_path / "nope.onnx"))
    assert code == cli.EXIT_ERROR
    assert "nope.onnx" in err and "no such file" in err


def test_dynamic_shape_without_input_is_a_clear_error(capsys):
    code, _, err = run(capsys, "profile", str(model_path()))
    assert code == cli.EXIT_ERROR
    assert "dynamic" in err or "--shape" in err


def test_bad_prune_mask_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["profile", str(model_path()), "--prune", "0x1000000"])
    assert exc.value.code == cli.EXIT_USAGE
    assert "0..0xFFFFFF" in capsys.readouterr().err


def test_output_file_type_is_checked_before_running(tmp_path, capsys):
    x = np.zeros((1, 1, 6, 6), np.float32)
    np.save(tmp_path / "x.npy", x)
    code, _, err = run(capsys, "run", str(model_path()), "--input", str(tmp_path / "x.npy"),
                       "--output", str(tmp_path / "y.txt"))
    assert code == cli.EXIT_ERROR and ".npy or .npz" in err
    assert not (tmp_path / "y.txt").exists()


def test_compare_json_gives_per_layer_and_final_errors(capsys):
    code, out, _ = run(capsys, "compare", str(model_path()), *SMALL, "--json")
    assert code == 0
    report = json.loads(out)
    assert report["precision"] == "fp32"
    assert [layer["kind"] for layer in report["layers"]].count("kernel") == 3
    final = report["outputs"]["sr"]
    assert final["rel_l2"] < 1e-5 and final["psnr_db"] > 100


def test_info_human_readable_names_the_device_and_registers(capsys):
    code, out, _ = run(capsys, "info", "--device", "sim")
    assert code == 0
    assert "kernel (ID/config registers)" in out and "ID_MAGIC" in out


def _not_models(tmp_path):
    """Files that are not models, each with what the error must call it."""
    onnx_bytes = model_path().read_bytes()
    (tmp_path / "empty.onnx").write_bytes(b"")
    (tmp_path / "truncated.onnx").write_bytes(onnx_bytes[:300])
    (tmp_path / "random.onnx").write_bytes(np.random.default_rng(3).bytes(4096))
    (tmp_path / "folder.onnx").mkdir()
    png = tmp_path / "picture.png"
    from bitlet.tools.imaging import write_png

    write_png(png, np.zeros((4, 4, 3), np.uint8))
    (tmp_path / "picture.onnx").write_bytes(png.read_bytes())
    return [("empty.onnx", "is an empty file, not an ONNX model"),
            ("truncated.onnx", "is not an ONNX model"),
            ("random.onnx", "is not an ONNX model"),
            ("folder.onnx", "is a directory"),
            ("picture.onnx", "is not an ONNX model"),
            ("picture.png", r"not a saved Bitlet program \(\.npz\)")]


@pytest.mark.parametrize("command", ["run", "profile", "compare"])
def test_a_file_that_is_no_model_is_one_line_naming_it(tmp_path, capsys, command):
    """Truncated/random/empty .onnx files, a directory and a PNG: one line, exit 1 (issue 13 item 10)."""
    import re

    for name, what in _not_models(tmp_path):
        code, out, err = run(capsys, command, str(tmp_path / name), "--device", "sim")
        assert code == 1, (name, out, err)
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, (name, err)
        assert name in err and re.search(what, err), (name, err)


def test_a_graph_without_outputs_does_not_compile(tmp_path, capsys):
    import onnx
    from onnx import helper

    model = helper.make_model(helper.make_graph([], "nothing", [], []),
                              opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, tmp_path / "nothing.onnx")
    code, _, err = run(capsys, "run", str(tmp_path / "nothing.onnx"), "--device", "sim")
    assert code == 1 and "has no graph outputs" in err


def test_a_closed_stdout_is_no_traceback():
    """`bitlet info | head -0`: the reader is gone before bitlet writes (BrokenPipeError)."""
    proc = subprocess.Popen([sys.executable, "-m", "bitlet", "info", "--device", "sim"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=60) == 1
    assert err == "", err


def test_an_unwritable_output_is_one_line(tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.zeros((1, 1, 12, 12), np.float32))
    (tmp_path / "out.npy").mkdir()
    code, _, err = run(capsys, "run", str(model_path()), "--input", str(tmp_path / "x.npy"),
                       "--output", str(tmp_path / "out.npy"), "--device", "sim")
    assert code == 1 and len(err.strip().splitlines()) == 1 and "out.npy" in err, err


def test_run_of_a_dynamic_model_on_a_remote_device_sends_its_weights_once(tmp_path, capsys):
    """`bitlet run MODEL --device tcp://...` of a model with dynamic N, H, W at two
    shapes: bit-identical to compiling each shape explicitly, and the second
    command names the weight image by its hash instead of sending it again."""
    onnx.save(espcn_nhw(), tmp_path / "espcn.onnx")
    rng = np.random.default_rng(12)
    xs = [rng.random((2, 1, 14, 10), dtype=np.float32), rng.random((1, 1, 9, 12), dtype=np.float32)]
    expect, program = explicit(xs)
    weight_bytes = program.meta["buffers"]["blob_bytes"]
    board = SimDevice()
    try:
        with Agent(board).start("tcp://127.0.0.1:0") as agent:
            for i, x in enumerate(xs):
                np.save(tmp_path / f"x{i}.npy", x)
                code, _, err = run(capsys, "run", str(tmp_path / "espcn.onnx"), "--device",
                                   f"tcp://127.0.0.1:{agent.port}", "--input",
                                   str(tmp_path / f"x{i}.npy"), "--output", str(tmp_path / f"y{i}.npy"))
                assert code == 0, err
                assert "cannot share weights" not in err
            assert agent.stats["op_program_put"] == 2 and agent.stats["op_model_run"] == 2
            assert agent.stats["weight_bytes_in"] == weight_bytes       # sent once, not per shape
            # each command is a session of its own: its device memory is its own
            assert agent.stats["weight_writes"] == 2 and not agent.session.groups
    finally:
        board.close()
    for i, e in enumerate(expect):
        y = np.load(tmp_path / f"y{i}.npy")
        assert y.shape == e.shape and y.tobytes() == e.tobytes()


@pytest.mark.filterwarnings("default")  # as outside pytest (its config turns warnings into errors)
def test_a_warning_is_one_line_naming_the_command(capsys, monkeypatch):
    # a library warning (e.g. an older agent that cannot share weights) reaches the
    # user as "bitlet CMD: warning: ...", not as Python's file:line + source form
    def warns(args):
        warnings.warn("the agent cannot share weights", RuntimeWarning, stacklevel=2)
        return 0

    monkeypatch.setattr(cli, "cmd_info", warns)
    code, _, err = run(capsys, "info")
    assert code == 0
    assert err.strip().splitlines() == ["bitlet info: warning: the agent cannot share weights"]
