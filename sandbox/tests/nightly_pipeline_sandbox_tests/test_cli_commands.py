"""`nightly-pipeline sandbox ...` exists because this distribution registers it, and only then."""
from __future__ import annotations

import importlib.metadata

import pytest

from nightly_pipeline import cli
from nightly_pipeline_sandbox.cli import cmd_serve

SANDBOX_DISTRIBUTION = "nightly_pipeline_sandbox"


def _distribution(entry_point: importlib.metadata.EntryPoint) -> str:
    return entry_point.dist.name.replace("-", "_").lower()


def test_the_sandbox_registers_its_commands_in_the_pipeline_group():
    registered = importlib.metadata.entry_points(group=cli.CLI_COMMANDS_GROUP)
    assert "sandbox" in registered.names
    assert _distribution(registered["sandbox"]) == SANDBOX_DISTRIBUTION
    args = cli.build_parser().parse_args(["sandbox", "serve", "--latency-scale", "0"])
    assert args.func is cmd_serve and args.latency_scale == 0


def test_without_the_sandbox_there_is_no_sandbox_command(monkeypatch: pytest.MonkeyPatch, capsys):
    installed = importlib.metadata.entry_points
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda **selection: importlib.metadata.EntryPoints(
        e for e in installed(**selection) if _distribution(e) != SANDBOX_DISTRIBUTION))
    parser = cli.build_parser()
    assert "sandbox" not in parser.format_help()
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["sandbox", "serve"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'sandbox'" in capsys.readouterr().err
    assert parser.parse_args(["tenant", "list"]).func is cli.cmd_tenant_list


def test_a_broken_add_on_leaves_the_pipeline_commands_working(monkeypatch: pytest.MonkeyPatch, capsys):
    installed = importlib.metadata.entry_points
    broken = importlib.metadata.EntryPoint("reports", "nightly_pipeline_sandbox.no_such_module:add_parser",
                                           cli.CLI_COMMANDS_GROUP)
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda **selection: importlib.metadata.EntryPoints(
        [*installed(**selection), broken]))
    parser = cli.build_parser()
    err = capsys.readouterr().err
    assert "skipping the 'reports' commands of nightly_pipeline_sandbox.no_such_module:add_parser" in err
    assert "ModuleNotFoundError" in err
    assert parser.parse_args(["sandbox", "serve"]).func is cmd_serve
    assert parser.parse_args(["tenant", "list"]).func is cli.cmd_tenant_list
