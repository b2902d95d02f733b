"""``qualitas serve``: the real server on 127.0.0.1 (uvicorn in a thread) called with httpx."""

from __future__ import annotations

import io
import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

sys.path.insert(0, str(Path(__file__).parents[1] / "export"))

from helpers import make_checkpoint  # noqa: E402

from qualitas.cli.main import main  # noqa: E402
from qualitas.runtime.score import ScoreOptions  # noqa: E402
from qualitas.serve import ServeConfig, ThreadedServer, create_app  # noqa: E402

TOKEN = "s3cret"


def _png(seed: int = 0, size=(48, 40)) -> bytes:
    arr = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("nr_img"), "nr_iqa", head="distribution", num_bins=5)


@pytest.fixture(scope="module")
def nr_server(run_dir):
    config = ServeConfig(
        model=str(run_dir), max_batch=4, max_wait_ms=50, workers=8, max_body_mb=1, token=TOKEN, threads=1
    )
    with ThreadedServer(create_app(config)) as server:
        yield server


def _client(server, token: str | None = TOKEN) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=server.url, headers=headers, timeout=60)


def _alive(client: httpx.Client) -> None:
    assert client.get("/healthz").json()["status"] == "ok"
    assert client.post("/score", content=_png(9), headers={"Content-Type": "image/png"}).status_code == 200


def test_good_image_raw_and_multipart_match_qualitas_score(nr_server, run_dir, tmp_path, capsys):
    data = _png(1)
    (tmp_path / "a.png").write_bytes(data)
    assert main(["score", str(tmp_path / "a.png"), "--model", str(run_dir), "--format", "json"]) == 0
    want = json.loads(capsys.readouterr().out)["results"][0]
    with _client(nr_server) as c:
        raw = c.post("/score", content=data, headers={"Content-Type": "image/png"})
        multi = c.post("/score", files={"file": ("a.png", data, "application/octet-stream")})
    assert raw.status_code == 200 and multi.status_code == 200
    for resp, name in ((raw, "upload"), (multi, "a.png")):
        doc = resp.json()
        assert set(doc) == {"version", "metrics", "options", "results"}
        row = doc["results"][0]
        assert row["path"] == name and row["kind"] == "image" and (row["width"], row["height"]) == (48, 40)
        assert set(row) == set(want)
        for metric, value in want["scores"].items():
            assert row["scores"][metric] == pytest.approx(value, rel=1e-5)
        assert "qualitas-serve" not in json.dumps(doc)  # no server path leaks


def test_video_upload_is_scored_frame_by_frame(nr_server, make_video):
    clip = make_video("c.mp4", n=4, size=(64, 48)).read_bytes()
    with _client(nr_server) as c:
        r = c.post("/score", files={"file": ("c.mp4", clip, "video/mp4")})
    assert r.status_code == 200, r.text
    row = r.json()["results"][0]
    assert row["kind"] == "video" and row["frames_scored"] == 4 and len(row["frames"]) == 4


def test_bad_requests_are_one_line_refusals_and_the_server_keeps_serving(nr_server):
    png = _png(2)
    with _client(nr_server) as c, _client(nr_server, token=None) as anon:
        cases = [
            (anon.post("/score", content=png, headers={"Content-Type": "image/png"}), 401),
            (
                _client(nr_server, "wrong").post(
                    "/score", content=png, headers={"Content-Type": "image/png"}
                ),
                401,
            ),
            (c.post("/score", content=b"\x00garbage" * 50, headers={"Content-Type": "image/png"}), 422),
            (c.post("/score", content=png[: len(png) // 2], headers={"Content-Type": "image/png"}), 422),
            (c.post("/score", content=b"", headers={"Content-Type": "image/png"}), 422),
            (c.post("/score", content=b"hello", headers={"Content-Type": "text/plain"}), 415),
            (c.post("/score", content=png), 415),  # no content type at all
            (c.post("/score", files={"file": ("notes.txt", b"hi", "text/plain")}), 415),
            (c.post("/score", files={"other": ("a.png", png, "image/png")}), 422),
            (
                c.post(
                    "/score", files={"file": ("a.png", png, "image/png"), "ref": ("b.png", png, "image/png")}
                ),
                422,
            ),
            (
                c.post("/score", content=b"\x00" * (2 * 1024 * 1024), headers={"Content-Type": "image/png"}),
                413,
            ),
            # No Content-Length (chunked): refused while streaming.
            (
                c.post("/score", content=iter([b"\x00" * 65536] * 40), headers={"Content-Type": "image/png"}),
                413,
            ),
            (
                c.post(
                    "/score",
                    content=b"--x\r\nbroken",
                    headers={"Content-Type": "multipart/form-data; boundary=x"},
                ),
                422,
            ),
            # A request cannot make the server read its own files.
            (c.post("/score", files={"file": ("/etc/passwd", b"root:x:0:0", "text/plain")}), 415),
        ]
        for resp, status in cases:
            assert resp.status_code == status, (status, resp.text)
            detail = resp.json()["detail"]
            assert isinstance(detail, str) and detail and "\n" not in detail and "Traceback" not in detail
        _alive(c)


def test_concurrent_requests_are_batched(nr_server):
    with _client(nr_server) as c:

        def one(i):
            return c.post("/score", content=_png(i), headers={"Content-Type": "image/png"})

        with ThreadPoolExecutor(12) as pool:
            responses = list(pool.map(one, range(24)))
        assert [r.status_code for r in responses] == [200] * 24
        metrics = c.get("/metrics").text
    assert 'qualitas_requests_total{code="200"}' in metrics and "qualitas_request_seconds_bucket" in metrics
    assert "qualitas_queue_depth" in metrics and 'qualitas_request_errors_total{reason="auth"}' in metrics
    count = float(
        next(
            line.split()[-1]
            for line in metrics.splitlines()
            if line.startswith("qualitas_batch_images_count")
        )
    )
    total = float(
        next(
            line.split()[-1] for line in metrics.splitlines() if line.startswith("qualitas_batch_images_sum")
        )
    )
    assert total >= 24 and count < total  # some model calls held several images


def test_openapi_and_healthz(nr_server):
    with _client(nr_server, token=None) as c:
        spec = c.get("/openapi.json").json()
        health = c.get("/healthz").json()
    assert "/score" in spec["paths"] and "multipart/form-data" in json.dumps(spec["paths"]["/score"])
    assert health["full_reference"] is False and health["metrics"] == ["tiny_nr_iqa"]


def test_full_reference_pairs_with_a_classical_metric(make_image):
    dist, ref = make_image("d.png", noise=8.0), make_image("r.png")
    config = ServeConfig(metrics=["psnr", "ssim"], workers=2, threads=1)
    with ThreadedServer(create_app(config)) as server, _client(server, token=None) as c:
        ok = c.post(
            "/score",
            files={
                "file": ("d.png", dist.read_bytes(), "image/png"),
                "ref": ("r.png", ref.read_bytes(), "image/png"),
            },
        )
        missing = c.post("/score", files={"file": ("d.png", dist.read_bytes(), "image/png")})
        odd = c.post(
            "/score",
            files={
                "file": ("d.png", dist.read_bytes(), "image/png"),
                "ref": ("r.mp4", b"\x00" * 99, "video/mp4"),
            },
        )
    assert ok.status_code == 200, ok.text
    row = ok.json()["results"][0]
    assert (row["path"], row["ref"]) == ("d.png", "r.png") and 20 < row["scores"]["psnr"] < 40
    assert missing.status_code == 422 and "full-reference" in missing.json()["detail"]
    assert odd.status_code == 422 and "qualitas-serve" not in odd.json()["detail"]


def test_queue_full_is_503_and_timeout_is_504(make_image):
    config = ServeConfig(metrics=["brisque"], workers=1, queue_size=0, timeout=0.5, threads=1)
    app = create_app(config)
    service = app.state.service
    real = service.session.score
    release = threading.Event()

    def slow(pair):
        release.wait(5)
        return real(pair)

    service.session.score = slow
    png = make_image("x.png").read_bytes()
    with ThreadedServer(app) as server, _client(server, token=None) as c:
        with ThreadPoolExecutor(3) as pool:
            first = pool.submit(c.post, "/score", content=png, headers={"Content-Type": "image/png"})
            time.sleep(0.2)
            second = c.post("/score", content=png, headers={"Content-Type": "image/png"})
            assert second.status_code == 503 and second.headers["retry-after"] == "1"
            assert first.result().status_code == 504
            release.set()
        service.session.score = real
        time.sleep(0.2)  # the timed-out worker ends and frees its slot
        assert c.post("/score", content=png, headers={"Content-Type": "image/png"}).status_code == 200


def test_serve_command_usage_errors(capsys):
    assert main(["serve"]) == 2
    assert "needs --model" in capsys.readouterr().err
    assert main(["serve", "--metric", "psnr", "--token-env", "QUALITAS_NO_SUCH_VAR"]) == 2
    assert ServeConfig(metrics=["psnr"], options=ScoreOptions()).workers == 8
