"""What ran, as a result records it: the node client, HAProxy and the proxies."""

from __future__ import annotations

from pathlib import Path

from harness.report.summary import software_line
from harness.stack.model import StackSpec
from harness.stack.software import docker_software, proxy_words, version_of


def test_proxies_are_named_in_the_order_traffic_passes_them() -> None:
    assert proxy_words(StackSpec()) == "none"
    assert proxy_words(StackSpec(fault_proxy=True)) == "harness fault proxy"
    both = StackSpec(fault_proxy=True, toxiproxy="http://127.0.0.1:8474")
    assert proxy_words(both, "2.9.0") == "Toxiproxy 2.9.0 -> harness fault proxy"


def test_a_docker_stack_names_its_images_and_reads_versions_from_their_tags() -> None:
    ran = docker_software(
        StackSpec(backend="docker", fault_proxy=True),
        {"node": "harness/anvil:1.7.1", "balancer": "harness/haproxy:2.6"},
    )
    assert ran == {
        "node": "anvil 1.7.1 (image harness/anvil:1.7.1)",
        "balancer": "HAProxy 2.6 (image harness/haproxy:2.6)",
        "proxy": "harness fault proxy",
    }
    assert software_line({"software": ran}) == (
        "anvil 1.7.1 (image harness/anvil:1.7.1); HAProxy 2.6 (image harness/haproxy:2.6); "
        "proxy: harness fault proxy"
    )


def test_a_version_that_cannot_be_read_is_none_not_a_guess(tmp_path: Path) -> None:
    assert version_of(tmp_path / "no-such-binary", ("--version",), r"(\d+)") is None
    assert version_of(Path("/bin/true"), (), r"(\d+\.\d+)") is None


def test_a_result_from_before_stacks_recorded_what_ran_has_no_line() -> None:
    assert software_line({}) is None
