"""``bitlet eval`` / ``bitlet.evaluate``: metrics, per-layer errors, resumable shards, Ray."""
from __future__ import annotations

import hashlib
import json
import sys

import bitlet
import numpy as np
import onnx
import pytest
from bitlet.tools import cli
from bitlet.tools.evaluate import evaluate, summarize
from bitlet.tools.imaging import ssim
from models import run_onnxruntime, tiny_cnn, tiny_unet
from raycluster import kill_worker_of, ray_cluster  # noqa: F401 - the fixture

pytestmark = pytest.mark.device


@pytest.fixture(scope="module")
def cnn_data(tmp_path_factory):
    """tiny_cnn (a 10-class classifier) and 24 synthetic inputs with labels."""
    d = tmp_path_factory.mktemp("eval")
    onnx.save(tiny_cnn(16), d / "cnn.onnx")
    rng = np.random.default_rng(7)
    x = rng.standard_normal((24, 3, 16, 16)).astype(np.float32)
    np.savez(d / "data.npz", x=x, labels=rng.integers(0, 10, 24))
    return d


# an independent re-implementation of bitlet.tools.shards.output_digest: the test's oracle
def _digest(outputs: dict) -> str:
    h = hashlib.sha256()
    for name in sorted(outputs):
        a = np.ascontiguousarray(outputs[name])
        h.update(f"{name}{a.dtype}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def test_ssim_of_planes_is_their_mean_and_nan_below_the_window():
    pytest.importorskip("skimage.metrics", reason="scikit-image is not installed")
    rng = np.random.default_rng(0)
    ref = rng.random((3, 20, 17))
    y = ref + 0.05 * rng.standard_normal(ref.shape)
    per_plane = [ssim(y[i], ref[i], float(ref.max() - ref.min())) for i in range(3)]
    assert ssim(y[None], ref[None]) == pytest.approx(np.mean(per_plane), rel=1e-12)
    assert ssim(ref, ref) == pytest.approx(1.0)
    assert 0 < ssim(y, ref) < 1
    assert np.isnan(ssim(ref[:, :5, :5], ref[:, :5, :5]))  # smaller than the window


def test_per_input_metrics_cycles_and_layers_match_independent_runs(cnn_data):
    """Every per-input figure re-measured here with bitlet.compile, profile, compare and
    onnxruntime (fixed8: errors far above onnxruntime's own rounding)."""
    result = evaluate(str(cnn_data / "cnn.onnx"), str(cnn_data / "data.npz"), precision="fixed8",
                      limit=6, shard_size=4)
    model = tiny_cnn(16)
    with np.load(cnn_data / "data.npz") as z:
        x, labels = z["x"], z["labels"]
    dev = bitlet.open("sim")
    compiled = bitlet.compile(model, device=dev, precision="fixed8")
    try:
        for i, rec in enumerate(result.records):
            xi = x[i:i + 1]
            assert rec["index"] == i and rec["name"] == f"data[{i}]"
            y = compiled(xi)
            (ref,) = run_onnxruntime(model, {"x": xi})
            rel = np.linalg.norm(y.astype(np.float64) - ref) / np.linalg.norm(ref.astype(np.float64))
            assert rec["rel_l2"] == pytest.approx(rel, rel=1e-3)
            assert rec["top1_agree"] == float(np.argmax(y) == np.argmax(ref))
            assert rec["correct"] == float(np.argmax(y) == labels[i])
            assert rec["ref_correct"] == float(np.argmax(ref) == labels[i])
            assert rec["digest"] == _digest({compiled.output_names[0]: y})
            prof = compiled.profile(xi)
            assert rec["kernel_cycles"] == prof.totals["kernel_cycles"]
            assert rec["predicted_ms"] == pytest.approx(prof.totals["predicted_ms"])
            report = bitlet.compare(compiled, xi)
            layer_rel = [row["rel_l2"] for row in report.layers]
            assert result.layers["names"] == [row["value"] for row in report.layers]
            assert result.layers["rel_l2"][i] == pytest.approx(layer_rel, rel=1e-3)
    finally:
        compiled.close()
        dev.close()
    s = result.summary
    rels = [r["rel_l2"] for r in result.records]
    assert s["n"] == 6 and s["metrics"]["rel_l2"]["mean"] == pytest.approx(np.mean(rels))
    assert s["metrics"]["rel_l2"]["p95"] == pytest.approx(np.percentile(rels, 95))
    assert s["worst"][0]["name"] == f"data[{int(np.argmax(rels))}]"
    assert s["accuracy"]["bitlet"] == pytest.approx(np.mean([r["correct"] for r in result.records]))
    assert "modelled" in str(result) and "accuracy on 6 labelled inputs" in str(result)


def test_image_outputs_get_psnr_and_ssim_and_layers_do_not_change_outputs(tmp_path):
    pytest.importorskip("skimage", reason="SSIM needs scikit-image (not in the board extra)")
    onnx.save(tiny_unet(16), tmp_path / "unet.onnx")
    np.save(tmp_path / "x.npy", np.random.default_rng(1).random((3, 3, 16, 16), dtype=np.float32))
    args = (str(tmp_path / "unet.onnx"), str(tmp_path / "x.npy"))
    with_layers, without = evaluate(*args, precision="fp16"), evaluate(*args, precision="fp16",
                                                                       layers=False)
    for a, b in zip(with_layers.records, without.records):
        assert a["digest"] == b["digest"]                 # per-layer runs: same output bits
        assert a["kernel_cycles"] == b["kernel_cycles"]   # and the same modelled cycles
        assert 20 < a["psnr_db"] < 200 and 0.9 < a["ssim"] <= 1.0
    assert with_layers.layers and without.layers is None
    assert "ssim" in with_layers.summary["metrics"]


def test_resume_skips_finished_shards_and_refuses_other_runs(cnn_data, tmp_path):
    data, model = str(cnn_data / "data.npz"), str(cnn_data / "cnn.onnx")
    whole = evaluate(model, data, limit=12, shard_size=4, layers=False)
    out = tmp_path / "run"

    def interrupt(done, total, what):
        if done >= 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        evaluate(model, data, limit=12, shard_size=4, layers=False, out=out, progress=interrupt)
    assert sorted(p.name for p in (out / "shards").iterdir()) == ["shard-00000.json"]
    resumed = evaluate(model, data, limit=12, shard_size=4, layers=False, out=out)
    assert resumed.info["skipped"] == 4
    assert resumed.records == whole.records and resumed.summary == whole.summary
    again = evaluate(model, data, limit=12, shard_size=4, layers=False, out=out)
    assert again.info["skipped"] == 12 and again.records == whole.records
    summary = json.loads((out / "summary.json").read_text())
    assert summary["summary"]["n"] == 12
    assert (out / "inputs.csv").read_text().count("\n") == 13
    with pytest.raises(bitlet.BitletValueError, match="holds the results of another run"):
        evaluate(model, data, limit=12, shard_size=4, layers=False, out=out, precision="fp16")
    changed = tmp_path / "changed.npz"
    with np.load(data) as z:
        np.savez(changed, x=z["x"][::-1].copy(), labels=z["labels"])
    with pytest.raises(bitlet.BitletValueError, match="other inputs"):
        evaluate(model, str(changed), limit=12, shard_size=4, layers=False, out=out)


def test_images_folder_and_csv_labels(tmp_path):
    pytest.importorskip("PIL", reason="reading images needs Pillow")
    from bitlet.tools.imaging import write_png

    onnx.save(tiny_cnn(16), tmp_path / "cnn.onnx")
    (tmp_path / "img").mkdir()
    rng = np.random.default_rng(3)
    for name in ("b.png", "a.png", "c.png"):
        write_png(tmp_path / "img" / name, rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
    (tmp_path / "labels.csv").write_text("name,label\na.png,1\nb.png,2\nc.png,3\n")
    result = evaluate(str(tmp_path / "cnn.onnx"), str(tmp_path / "img"),
                      labels=str(tmp_path / "labels.csv"), layers=False)
    assert [r["name"] for r in result.records] == ["a.png", "b.png", "c.png"]
    assert [r["label"] for r in result.records] == [1, 2, 3]
    (tmp_path / "bad.csv").write_text("a.png,1\n")
    with pytest.raises(bitlet.BitletValueError, match="no label for 2 inputs"):
        evaluate(str(tmp_path / "cnn.onnx"), str(tmp_path / "img"), labels=str(tmp_path / "bad.csv"))
    write_png(tmp_path / "img" / "d.png", rng.integers(0, 256, (8, 16, 3), dtype=np.uint8))
    with pytest.raises(bitlet.BitletValueError, match=r"^input d\.png: "):
        evaluate(str(tmp_path / "cnn.onnx"), str(tmp_path / "img"), layers=False)
    assert bitlet.evaluate is evaluate                  # the lazy public API


def test_summary_of_shuffled_records_is_the_same():
    rng = np.random.default_rng(0)
    recs = [{"index": i, "name": str(i), "rel_l2": float(v), "max_abs": float(v), "kernel_cycles": 5}
            for i, v in enumerate(rng.random(50))]
    assert summarize(recs) == summarize(list(reversed(recs)))


def test_cli_eval_json_and_files(cnn_data, tmp_path, capsys):
    code = cli.main(["eval", str(cnn_data / "cnn.onnx"), "--data", str(cnn_data / "data.npz"),
                     "--limit", "5", "--out", str(tmp_path / "o"), "--json", "--no-layers"])
    out, err = capsys.readouterr()
    assert code == 0, err
    data = json.loads(out)
    assert data["summary"]["n"] == 5 and data["info"]["cycles"].startswith("modelled")
    assert (tmp_path / "o" / "inputs.csv").exists() and (tmp_path / "o" / "summary.json").exists()


def test_cli_eval_errors_are_one_line(cnn_data, capsys, monkeypatch):
    model, data = str(cnn_data / "cnn.onnx"), str(cnn_data / "data.npz")
    assert cli.main(["eval", model, "--data", str(cnn_data / "nope.npz")]) == 1
    assert capsys.readouterr().err.strip() == \
        f"bitlet eval: error: --data {cnn_data / 'nope.npz'}: no such file or folder"
    monkeypatch.setitem(sys.modules, "ray", None)   # as if Ray were not installed
    assert cli.main(["eval", model, "--data", data, "--workers", "2", "--limit", "2"]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "pip install 'bitlet[cluster]'" in err and "--workers 1" in err
    assert cli.main(["eval", model, "--data", data, "--limit", "2", "--no-layers"]) == 0  # still works


# --------------------------------------------------------------------------- Ray
# `slow`: starting the local cluster and its worker processes alone takes ~20 s on two
# busy cores; the full suite (CI, `pip install ".[dev]"`, which includes Ray) runs them.
@pytest.mark.slow
@pytest.mark.usefixtures("ray_cluster")
def test_two_workers_equal_one_process_bit_for_bit_with_a_killed_worker(tmp_path):
    """A few hundred inputs on a local 2-worker cluster, one worker SIGKILLed mid-run: every
    per-input record (output digests included), per-layer error and aggregate equals the
    single-process run; no input is lost or counted twice; a rerun resumes everything."""
    onnx.save(tiny_cnn(16), tmp_path / "cnn.onnx")
    rng = np.random.default_rng(11)
    np.savez(tmp_path / "d.npz", x=rng.standard_normal((200, 3, 16, 16)).astype(np.float32),
             labels=rng.integers(0, 10, 200))
    args = (str(tmp_path / "cnn.onnx"), str(tmp_path / "d.npz"))
    single = evaluate(*args, shard_size=8)
    out = tmp_path / "out"
    killed = []

    def kill_once(done, total, what):
        if done and not killed:
            first = next(p for p in (out / "shards").iterdir() if p.suffix == ".json")
            killed.append(kill_worker_of(first))

    dist = evaluate(*args, shard_size=8, workers=2, out=out, progress=kill_once)
    assert killed and dist.info["runner"]["retries"] >= 1
    assert [r["index"] for r in dist.records] == list(range(200))
    assert dist.records == single.records
    assert dist.layers == single.layers and dist.summary == single.summary
    workers = [json.loads(p.read_text())["worker"] for p in (out / "shards").iterdir()]
    assert {w["threads"] for w in workers} == {"1"}     # BITLET_THREADS set in every worker
    pids = {w["pid"] for w in workers}
    assert len(pids) >= 3 and killed[0] in pids      # two workers and the replacement
    resumed = evaluate(*args, shard_size=8, workers=2, out=out)
    assert resumed.info["skipped"] == 200 and resumed.summary == single.summary


@pytest.mark.slow
@pytest.mark.usefixtures("ray_cluster")
def test_calibrate_on_workers_equals_in_process():
    from bitlet.drivers.sim import SimDevice
    from bitlet.tools.calibrate import calibrate

    model = tiny_cnn()
    xs = [np.random.default_rng(i).standard_normal((1, 3, 16, 16)).astype(np.float32)
          for i in range(2)]
    with SimDevice() as dev:
        here = calibrate(model, xs, device=dev, budget=2e-3, bits=(3,), keep_columns=(12,))
        there = calibrate(model, xs, device=dev, budget=2e-3, bits=(3,), keep_columns=(12,),
                          workers=2)
    assert there.as_dict() == here.as_dict() and len(here.sensitivity) == 10


def test_given_reference_outputs_replace_onnxruntime(tmp_path):
    model = tiny_unet(16)
    onnx.save(model, tmp_path / "unet.onnx")
    x = np.random.default_rng(2).random((3, 1, 3, 16, 16), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    refs = np.stack([run_onnxruntime(model, {"x": xi})[0] for xi in x])   # [3, 1, C, H, W]
    np.save(tmp_path / "ref.npy", refs * 1.01)          # a reference 1 % off the model's outputs
    given = evaluate(str(tmp_path / "unet.onnx"), str(tmp_path / "x.npy"),
                     reference=str(tmp_path / "ref.npy"), layers=False)
    assert given.info["reference"] == f"reference outputs ({tmp_path / 'ref.npy'})"
    for rec in given.records:   # the outputs are ~1/1.01 of the given reference
        assert rec["rel_l2"] == pytest.approx(0.01 / 1.01, rel=1e-3)
    np.save(tmp_path / "bad.npy", refs[:, :, :, :15])
    with pytest.raises(bitlet.BitletValueError, match="reference for output .* per input"):
        evaluate(str(tmp_path / "unet.onnx"), str(tmp_path / "x.npy"),
                 reference=str(tmp_path / "bad.npy"), layers=False)


def test_saved_program_needs_and_uses_given_references(tmp_path):
    model = tiny_unet(16)
    x = np.random.default_rng(4).random((2, 1, 3, 16, 16), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "ref.npy", np.stack([run_onnxruntime(model, {"x": xi})[0] for xi in x]))
    dev = bitlet.open("sim")
    compiled = bitlet.compile(model, device=dev)
    compiled.save(tmp_path / "unet.bitlet.npz")
    want = [_digest({compiled.output_names[0]: compiled(xi)}) for xi in x]
    compiled.close()
    dev.close()
    got = evaluate(str(tmp_path / "unet.bitlet.npz"), str(tmp_path / "x.npy"),
                   reference=str(tmp_path / "ref.npy"))
    assert [r["digest"] for r in got.records] == want and got.layers is None
    assert all(r["rel_l2"] < 1e-5 for r in got.records)
    with pytest.raises(bitlet.BitletValueError, match="a saved program has no ONNX model"):
        evaluate(str(tmp_path / "unet.bitlet.npz"), str(tmp_path / "x.npy"))
