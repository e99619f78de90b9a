"""HAProxy's config (rendered from a template, checked by ``haproxy -c``) and its ``show stat``.

Rendering and parsing are pure; validation runs the real ``haproxy -c``, and the quoting
of the health-check body is checked where it matters: in the request HAProxy sends.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.errors import ConfigError
from harness.stack.haproxy import (
    DEFAULT_TEMPLATE,
    HARDENED_TEMPLATE,
    POLICY_TEMPLATES,
    ServerEntry,
    ServerStatus,
    haproxy_binary,
    parse_show_stat,
    render_config,
    template_for,
    validate_config,
)
from harness.stack.local import PlannedStack
from harness.stack.model import POLICY_NAMES, HealthCheck, StackSpec, StackState
from harness.stack.nodes import HttpCheck
from harness.stack.ports import free_port

# `show stat` of HAProxy 2.6.12 for the default template: a frontend, node-0 UP (active),
# node-1 DOWN (backup), the backend, and the stats listener's own FRONTEND/BACKEND rows.
SHOW_STAT_HEADER = (
    "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,"
    "wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,"
    "lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,"
    "hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate,req_rate_max,req_tot,"
    "cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,comp_rsp,lastsess,last_chk,last_agt,qtime,"
    "ctime,rtime,ttime,agent_status,agent_code,agent_duration,check_desc,agent_desc,check_rise,"
    "check_fall,check_health,agent_rise,agent_fall,agent_health,addr,cookie,mode,algo,"
    "conn_rate,conn_rate_max,conn_tot,intercepted,dcon,dses,wrew,connect,reuse,cache_lookups,"
    "cache_hits,srv_icur,src_ilim,qtime_max,ctime_max,rtime_max,ttime_max,eint,idle_conn_cur,"
    "safe_conn_cur,used_conn_cur,need_conn_est,uweight,agg_server_status,"
    "agg_server_check_status,agg_check_status,-,ssl_sess,ssl_reused_sess,ssl_failed_handshake,"
    "h2_headers_rcvd,h2_data_rcvd,h2_settings_rcvd,h2_rst_stream_rcvd,h2_goaway_rcvd,"
    "h2_detected_conn_protocol_errors,h2_detected_strm_protocol_errors,h2_rst_stream_resp,"
    "h2_goaway_resp,h2_open_connections,h2_backend_open_streams,h2_total_connections,"
    "h2_backend_total_streams,h1_open_connections,h1_open_streams,h1_total_connections,"
    "h1_total_streams,h1_bytes_in,h1_bytes_out,h1_spliced_bytes_in,h1_spliced_bytes_out,\n"
)
SHOW_STAT = SHOW_STAT_HEADER + (
    "ethereum_frontend,FRONTEND,,,0,3,4096,41,6806,4469,0,0,0,,,,,OPEN,,,,,,,,,1,2,0,,,,0,0,0,"
    "2,,,,0,41,0,0,0,0,,0,2,41,,,0,0,0,0,,,,,,,,,,,,,,,,,,,,,http,,0,2,41,0,0,0,0,,,0,0,,,,,,,0,"
    ",,,,,,,,-,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,1,1,41,41,6806,4469,0,0,\n"
    "ethereum_backend,node-0,0,0,0,0,,12,0,0,,0,,0,0,0,0,UP,1,1,0,0,0,37,0,,1,3,1,,12,,2,0,,0,"
    "L7OK,200,1,0,12,0,0,0,0,,,,0,0,0,,,,,-1,HTTP status check returned code <3C>200<3E>,,0,0,"
    "0,0,,,,Layer7 check passed,,2,3,4,,,,127.0.0.1:45011,,http,,,,,,,,0,0,0,,,0,,0,0,0,0,0,0,"
    "0,0,1,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,\n"
    "ethereum_backend,node-1,0,0,0,0,,0,0,0,,0,,0,0,0,0,DOWN,1,0,1,1,1,3,2,,1,3,2,,0,,2,0,,0,"
    "L4CON,,0,0,0,0,0,0,0,,,,0,0,0,,,,,-1,Connection refused,,0,0,0,0,,,,Layer4 connection "
    "problem,,2,3,0,,,,127.0.0.1:45013,,http,,,,,,,,0,0,0,,,0,,0,0,0,0,0,0,0,0,1,1,,,,-,0,0,0,"
    ",,,,,,,,,,,,,,,,,,,,,\n"
    "ethereum_backend,BACKEND,0,0,0,0,410,12,6806,4469,0,0,,0,0,0,0,UP,1,1,1,,0,37,0,,1,3,0,,12"
    ",,1,0,,0,,,,0,12,0,0,0,0,,,,12,0,0,0,0,0,0,-1,,,0,0,0,0,,,,,,,,,,,,,,http,roundrobin,,,,,,"
    ",0,0,0,0,0,,,0,0,0,0,0,,,,,0,0,0,0,-,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,11,11,0,0,0,0,\n"
    "stats,FRONTEND,,,0,1,4096,2,380,21542,0,0,0,,,,,OPEN,,,,,,,,,1,4,0,,,,0,0,0,1,,,,0,2,0,0,0,"
    "0,,0,1,2,,,0,0,0,0,,,,,,,,,,,,,,,,,,,,,http,,0,1,2,0,0,0,0,,,0,0,,,,,,,0,,,,,,,,,-,0,0,0,0,"
    "0,0,0,0,0,0,0,0,0,0,0,0,1,1,2,2,380,21542,0,0,\n"
    "stats,BACKEND,0,0,0,0,410,0,380,21542,0,0,,0,0,0,0,UP,0,0,0,,0,37,,,1,4,0,,0,,1,0,,0,,,,0,"
    "0,0,0,0,0,,,,0,0,0,0,0,0,0,-1,,,0,0,0,0,,,,,,,,,,,,,,http,roundrobin,,,,,,,0,0,0,0,0,,,0,0"
    ",0,0,0,,,,,0,0,0,0,-,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,11,11,0,0,0,0,\n"
    "\n"
)


def rendered(
    tmp_path: Path,
    *,
    template: Path | None = None,
    servers: list[ServerEntry] | None = None,
    check: HttpCheck | None = None,
    health: HealthCheck | None = None,
) -> str:
    return render_config(
        template=template,
        frontend_host="127.0.0.1",
        frontend_port=free_port(),
        stats_port=free_port(),
        stats_socket=tmp_path / "stats.sock",
        servers=servers
        if servers is not None
        else [
            ServerEntry("node-0", "127.0.0.1", 8545, backup=False),
            ServerEntry("node-1", "127.0.0.1", 8546, backup=True),
        ],
        check=check or HttpCheck(),
        health=health or HealthCheck(),
    )


def written(tmp_path: Path, text: str, name: str = "haproxy.cfg") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@contextlib.contextmanager
def capturing_server() -> Iterator[tuple[int, socket.socket]]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(3.0)
        yield listener.getsockname()[1], listener


def check_request_body(tmp_path: Path, check: HttpCheck) -> bytes:
    """Run HAProxy on the rendered default config; the body of its first health check."""
    with capturing_server() as (port, listener):
        config = rendered(
            tmp_path,
            servers=[ServerEntry("node-0", "127.0.0.1", port, backup=False)],
            check=check,
            health=HealthCheck(inter_ms=100, fall=1, rise=1),
        )
        proxy = subprocess.Popen(
            [str(haproxy_binary()), "-db", "-f", str(written(tmp_path, config))],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(3.0)
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, _, body = data.partition(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                while len(body) < length:
                    body += conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        finally:
            proxy.terminate()
            proxy.wait(5)
    return body


# --- parse_show_stat ---------------------------------------------------------------------


def test_show_stat_yields_only_server_rows_in_order() -> None:
    servers = parse_show_stat(SHOW_STAT)
    assert [(s.backend, s.server) for s in servers] == [
        ("ethereum_backend", "node-0"),
        ("ethereum_backend", "node-1"),
    ]


def test_show_stat_reads_a_healthy_active_server() -> None:
    node0 = parse_show_stat(SHOW_STAT)[0]
    assert node0 == ServerStatus(
        backend="ethereum_backend",
        server="node-0",
        status="UP",
        check_status="L7OK",
        check_duration_ms=1,
        last_change_s=37,
        backup=False,
    )
    assert node0.up


def test_show_stat_reads_a_down_backup_server() -> None:
    node1 = parse_show_stat(SHOW_STAT)[1]
    assert (node1.status, node1.check_status, node1.backup) == ("DOWN", "L4CON", True)
    assert (node1.check_duration_ms, node1.last_change_s) == (0, 3)
    assert not node1.up


@pytest.mark.parametrize("transitional", ["UP 1/2", "DOWN 1/2", "MAINT", "no check"])
def test_only_plain_up_counts_as_up(transitional: str) -> None:
    text = SHOW_STAT.replace(",0,0,0,0,UP,1,1,0,", f",0,0,0,0,{transitional},1,1,0,", 1)
    node0 = parse_show_stat(text)[0]
    assert node0.server == "node-0"
    assert node0.status == transitional
    assert not node0.up


def test_a_server_without_checks_has_no_check_duration() -> None:
    text = SHOW_STAT.replace(",L7OK,200,1,", ",,,,", 1)
    node0 = parse_show_stat(text)[0]
    assert (node0.check_status, node0.check_duration_ms) == ("", None)


def test_listener_rows_of_socket_stats_are_not_servers() -> None:
    # With `option socket-stats` HAProxy adds a row per listener: type 3, named after it.
    listener = (
        "ethereum_frontend,sock-1,,,0,0,0,0,0,0,0,0,0,,,,,OPEN,,,,,,,,,1,2,1,,,,3,,,,,,,,,,,,,,,,"
        ",,,,,,,,,,,,,,,,,,,,,,,,,127.0.0.1:18545,,http,,,,,,0,0,0,,,,,,,,,,,0,,,,,,,,,-,0,0,0,,,"
        ",,,,,,,,,,,,,,,,,,,\n"
    )
    text = SHOW_STAT.replace("ethereum_backend,node-0,", listener + "ethereum_backend,node-0,", 1)
    assert [s.server for s in parse_show_stat(text)] == ["node-0", "node-1"]


def test_show_stat_with_only_the_header_has_no_servers() -> None:
    assert parse_show_stat(SHOW_STAT_HEADER + "\n") == []


haproxy_names = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:",
    min_size=1,
    max_size=20,
).filter(lambda n: n not in ("FRONTEND", "BACKEND"))
server_rows = st.tuples(
    haproxy_names,
    st.sampled_from(["UP", "DOWN", "UP 1/2", "DOWN 1/3", "MAINT", "DRAIN", "no check"]),
    st.booleans(),
    st.none() | st.integers(min_value=0, max_value=10**6),
)


@given(backend=haproxy_names, rows=st.lists(server_rows, max_size=8))
def test_show_stat_returns_exactly_the_server_rows_written(
    backend: str, rows: list[tuple[str, str, bool, int | None]]
) -> None:
    columns = "pxname,svname,status,bck,lastchg,check_status,check_duration,type"
    lines = [f"# {columns},", f"{backend},FRONTEND,OPEN,,,,,0,"]
    for name, status, backup, lastchg in rows:
        last = "" if lastchg is None else str(lastchg)
        lines.append(f"{backend},{name},{status},{int(backup)},{last},L7OK,2,2,")
    lines.append(f"{backend},BACKEND,UP,0,5,,,1,")

    parsed = parse_show_stat("\n".join(lines) + "\n\n")

    assert parsed == [
        ServerStatus(backend, name, status, "L7OK", 2, lastchg, backup)
        for name, status, backup, lastchg in rows
    ]


# --- render_config -----------------------------------------------------------------------


def config_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def test_default_template_renders_each_server_and_marks_the_backup(tmp_path: Path) -> None:
    lines = config_lines(rendered(tmp_path))
    assert "server node-0 127.0.0.1:8545" in lines
    assert "server node-1 127.0.0.1:8546 backup" in lines


def test_default_template_renders_the_check_interval_and_thresholds(tmp_path: Path) -> None:
    lines = config_lines(rendered(tmp_path, health=HealthCheck(inter_ms=250, fall=4, rise=3)))
    assert "default-server check inter 250ms fall 4 rise 3" in lines


def test_default_template_renders_the_check_request_and_expected_status(tmp_path: Path) -> None:
    check = HttpCheck(
        method="GET", uri="/health", headers=(("X-Check", "synced"),), body=None, expect_status=204
    )
    lines = config_lines(rendered(tmp_path, check=check))
    assert "http-check send meth GET uri /health hdr X-Check synced" in lines
    assert "http-check expect status 204" in lines


def test_a_body_with_quotes_is_rendered_as_one_quoted_word(tmp_path: Path) -> None:
    check = HttpCheck(body='{"say":"a \\"quoted\\" word"}')
    send = next(
        line
        for line in config_lines(rendered(tmp_path, check=check))
        if line.startswith("http-check send")
    )
    assert send.endswith(r' body "{\"say\":\"a \\\"quoted\\\" word\"}"')


def test_haproxy_sends_a_body_with_quotes_and_backslashes_byte_for_byte(tmp_path: Path) -> None:
    body = '{"jsonrpc":"2.0","method":"eth_call","params":["a \\"b\\" c"],"id":1}'
    assert check_request_body(tmp_path, HttpCheck(body=body)) == body.encode()


def test_haproxy_sends_a_body_with_a_dollar_sign_byte_for_byte(tmp_path: Path) -> None:
    body = '{"jsonrpc":"2.0","method":"x","params":["$HOME"],"id":1}'
    assert check_request_body(tmp_path, HttpCheck(body=body)) == body.encode()


def test_a_body_with_a_newline_still_renders_a_valid_config(tmp_path: Path) -> None:
    check = HttpCheck(body='{\n  "jsonrpc": "2.0", "method": "eth_syncing", "id": 1\n}')
    validate_config(written(tmp_path, rendered(tmp_path, check=check)))


def test_a_template_with_an_undefined_variable_names_the_template(tmp_path: Path) -> None:
    template = written(tmp_path, "global\n    maxconn {{ max_connections }}\n", "mine.cfg.j2")
    with pytest.raises(ConfigError) as caught:
        rendered(tmp_path, template=template)
    assert caught.value.field == "haproxy_template"
    assert caught.value.value == str(template)
    assert "max_connections" in str(caught.value)


def test_a_template_with_a_syntax_error_names_the_template(tmp_path: Path) -> None:
    template = written(tmp_path, "{% for s in servers %}\nserver {{ s.name }}\n", "mine.cfg.j2")
    with pytest.raises(ConfigError) as caught:
        rendered(tmp_path, template=template)
    assert (caught.value.field, caught.value.value) == ("haproxy_template", str(template))
    assert "does not render" in caught.value.fix


@pytest.mark.parametrize("kind", ["missing", "directory"])
def test_an_unreadable_template_path_is_a_config_error(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "nope.cfg.j2"
    if kind == "directory":
        path.mkdir()
    with pytest.raises(ConfigError) as caught:
        rendered(tmp_path, template=path)
    assert (caught.value.field, caught.value.value) == ("haproxy_template", str(path))
    assert "cannot read it" in caught.value.fix


def test_a_users_template_gets_the_same_variables(tmp_path: Path) -> None:
    template = written(
        tmp_path,
        "{% for s in servers %}{{ s.name }}={{ s.port }}{% if s.backup %}b{% endif %} "
        "{% endfor %}{{ check.inter_ms }}/{{ check.fall }}/{{ check.rise }}",
        "mine.cfg.j2",
    )
    text = rendered(tmp_path, template=template, health=HealthCheck(300, 5, 6))
    assert text == "node-0=8545 node-1=8546b 300/5/6"


# --- validate_config (the real `haproxy -c`) ---------------------------------------------


def test_haproxy_accepts_the_rendered_default_template(tmp_path: Path) -> None:
    validate_config(written(tmp_path, rendered(tmp_path)))


def test_haproxy_accepts_the_default_template_with_a_single_server(tmp_path: Path) -> None:
    one = [ServerEntry("node-0", "127.0.0.1", 8545, backup=False)]
    validate_config(written(tmp_path, rendered(tmp_path, servers=one)))


def test_a_config_haproxy_rejects_is_a_config_error_in_haproxys_own_words(
    tmp_path: Path,
) -> None:
    broken = DEFAULT_TEMPLATE.read_text().replace(
        "    balance roundrobin", "    balance roundrobin\n    retry-on-everything yes"
    )
    template = written(tmp_path, broken, "broken.cfg.j2")
    config = written(tmp_path, rendered(tmp_path, template=template))

    with pytest.raises(ConfigError) as caught:
        validate_config(config)

    assert (caught.value.field, caught.value.value) == ("haproxy config", str(config))
    assert "unknown keyword 'retry-on-everything'" in caught.value.fix
    assert "haproxy -c" in caught.value.fix


def test_a_server_with_a_bad_address_is_rejected_by_haproxy(tmp_path: Path) -> None:
    bad = [ServerEntry("node-0", "127.0.0.1", 70000, backup=False)]
    with pytest.raises(ConfigError) as caught:
        validate_config(written(tmp_path, rendered(tmp_path, servers=bad)))
    assert "node-0" in caught.value.fix


# --- the hardened policy -----------------------------------------------------------------


def hardened(tmp_path: Path, health: HealthCheck | None = None, agents: bool = True) -> str:
    return rendered(
        tmp_path,
        template=HARDENED_TEMPLATE,
        servers=[
            ServerEntry(
                "node-0", "127.0.0.1", 8545, backup=False, agent_port=9001 if agents else None
            ),
            ServerEntry(
                "node-1", "127.0.0.1", 8546, backup=True, agent_port=9002 if agents else None
            ),
        ],
        health=health,
    )


def test_haproxy_accepts_the_rendered_hardened_template(tmp_path: Path) -> None:
    validate_config(written(tmp_path, hardened(tmp_path)))


def test_haproxy_accepts_the_hardened_template_without_an_agent(tmp_path: Path) -> None:
    text = hardened(tmp_path, agents=False)
    validate_config(written(tmp_path, text))
    servers = [line for line in config_lines(text) if line.startswith("server ")]
    assert servers == ["server node-0 127.0.0.1:8545", "server node-1 127.0.0.1:8546 backup"]


def test_hardened_template_asks_the_agent_about_each_server_on_its_own_port(
    tmp_path: Path,
) -> None:
    lines = config_lines(hardened(tmp_path))
    agent = "agent-check agent-addr 127.0.0.1 agent-port {} agent-inter 250ms"
    assert f"server node-0 127.0.0.1:8545 {agent.format(9001)}" in lines
    assert f"server node-1 127.0.0.1:8546 backup {agent.format(9002)}" in lines


def test_hardened_template_retries_a_failed_request_on_another_server(tmp_path: Path) -> None:
    lines = config_lines(hardened(tmp_path))
    assert "retry-on conn-failure empty-response response-timeout 503" in lines
    assert "retries 2" in lines
    assert "option redispatch 1" in lines


def test_hardened_template_has_short_timeouts_and_a_long_one_for_traces(tmp_path: Path) -> None:
    lines = config_lines(hardened(tmp_path))
    for line in ("timeout connect 500ms", "timeout check 500ms", "timeout server 1500ms"):
        assert line in lines
    assert "http-request set-timeout server 10s if { req.body -m sub debug_trace }" in lines


@pytest.mark.parametrize(
    ("health", "expected"),
    [
        (
            HealthCheck(),
            "inter 2000ms fastinter 250ms downinter 500ms fall 2 rise 2",
        ),
        (
            HealthCheck(inter_ms=100, fall=1, rise=4),
            "inter 100ms fastinter 100ms downinter 100ms fall 1 rise 4",
        ),
        (
            HealthCheck(inter_ms=400, fall=5, rise=1),
            "inter 400ms fastinter 250ms downinter 400ms fall 2 rise 1",
        ),
    ],
    ids=["defaults", "fast-inter-single-fall", "fall-capped-at-2"],
)
def test_hardened_check_intervals_derive_from_the_stacks_check(
    tmp_path: Path, health: HealthCheck, expected: str
) -> None:
    (line,) = [
        x for x in config_lines(hardened(tmp_path, health)) if x.startswith("default-server")
    ]
    assert line == (
        f"default-server check {expected} observe layer7 error-limit 3 on-error mark-down"
    )


def test_each_policy_renders_its_own_template_and_a_users_template_wins(tmp_path: Path) -> None:
    mine = written(tmp_path, "global\n", "mine.cfg.j2")
    assert template_for("roadmap") == DEFAULT_TEMPLATE
    assert template_for("hardened") == HARDENED_TEMPLATE
    assert template_for("hardened", mine) == mine
    assert set(POLICY_TEMPLATES) == set(POLICY_NAMES)


def test_an_unknown_policy_is_a_config_error_naming_the_choices() -> None:
    with pytest.raises(ConfigError) as caught:
        StackSpec(policy="paranoid")
    assert (caught.value.field, caught.value.value) == ("policy", "paranoid")
    assert caught.value.fix == "choose one of: roadmap, hardened"


def test_the_policy_survives_the_specs_round_trip() -> None:
    spec = StackSpec(policy="hardened", agent_max_lag_blocks=4)
    assert StackSpec.from_dict(spec.to_dict()) == spec


def test_a_state_file_without_the_policy_loads_as_the_roadmaps() -> None:
    doc = PlannedStack(StackSpec()).state().to_dict()
    del doc["haproxy_policy"], doc["haproxy_template"]
    state = StackState.from_dict(doc)
    assert (state.haproxy_policy, state.haproxy_template) == ("roadmap", None)


def test_show_stat_reads_what_the_agent_said() -> None:
    text = (
        "# pxname,svname,status,bck,lastchg,check_status,check_duration,type,agent_status,"
        "last_agt,\n"
        "b,node-0,DOWN (agent),0,3,L7OK,0,2,L7STS,via agent : down (4 blocks behind best head 9),\n"
        'b,node-1,UP,1,3,L7OK,0,2,L7OK,"via agent : up (head 9, best 9)",\n'
        "\n"
    )
    node0, node1 = parse_show_stat(text)
    assert (node0.status, node0.agent_status) == ("DOWN (agent)", "L7STS")
    assert node0.last_agent == "via agent : down (4 blocks behind best head 9)"
    assert not node0.up
    assert (node1.agent_status, node1.last_agent) == ("L7OK", "via agent : up (head 9, best 9)")
