"""`atento serve` as a user starts it: a subprocess on a free loopback port, stopped at the end."""

import json
import socket
import urllib.request

from atento.cli.main import main

from .conftest import DATES, post_json, serving


def test_atento_serve_answers_and_stops(tf_run, tmp_path):
    args = ("--max-sentences", "2", "--max-wait-ms", "2", "--precision", "fp32")
    with serving(str(tf_run), *args) as url:
        with urllib.request.urlopen(url + "/v1/models") as r:
            (info,) = json.loads(r.read())["models"]
        assert info["arch"] == "transformer" and info["name"] == tf_run.name
        assert info["precision"] == "fp32"
        status, body = post_json(url + "/v1/translate", {"text": DATES[0], "beam": 2})
        assert status == 200 and body["translations"][0]["text"]
        status, body = post_json(url + "/v1/translate", {"texts": DATES[:3]})
        assert status == 413 and body["error"]["item"] == "texts"
        with urllib.request.urlopen(url + "/") as r:
            assert b"atento" in r.read()


def test_serve_refuses_bad_arguments(tf_run, tmp_path, capsys):
    assert main(["serve", str(tmp_path / "missing")]) == 2
    assert "run directory not found" in capsys.readouterr().err
    assert main(["serve", str(tf_run), "--max-chars", "0"]) == 2
    assert "--max-chars must be at least 1" in capsys.readouterr().err
    assert main(["serve", str(tf_run), str(tf_run)]) == 2
    assert "two runs are named" in capsys.readouterr().err


def test_serve_on_a_port_in_use_is_a_one_line_error(tf_run, capsys):
    with socket.socket() as held:  # another server on the port
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        code = main(["serve", str(tf_run), "--port", str(port)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err == (
        f"atento serve: error: port {port} on 127.0.0.1 is already in use (another server?): "
        "choose another --port\n"
    )  # nothing loaded, nothing said to be served
    code = main(["serve", str(tf_run), "--host", "no-such-host.invalid"])
    err = capsys.readouterr().err
    assert code == 2 and "--host no-such-host.invalid: not an address" in err
    assert len(err.splitlines()) == 1
