"""The shape the code keeps: assets take loaded settings and ready clients from their resources, and
the database layer takes the tenant from the scoped transaction, never as an argument."""
from __future__ import annotations

import ast
import inspect
from importlib import resources

import pytest

from nightly_pipeline.db import (acra, contacts, enrichment, night_checks, night_stages, public_facts, reports,
                                  scores, targets, tenants)

ASSET_MODULES = sorted(entry.name for entry in (resources.files("nightly_pipeline") / "assets").iterdir()
                       if entry.name.endswith(".py"))
# Registry functions run in the shared scope and act on a tenant named by the operator.
CROSS_TENANT = {("tenants", "set_status"), ("tenants", "set_export_unverified")}


def asset_tree(name: str) -> ast.Module:
    return ast.parse((resources.files("nightly_pipeline") / "assets" / name).read_text(encoding="utf-8"))


def _names(node: ast.AST) -> list[str]:
    return [n.id for n in ast.walk(node) if isinstance(n, ast.Name)] + \
           [n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)]


@pytest.mark.parametrize("module", ASSET_MODULES)
def test_no_asset_reads_the_environment_or_rebuilds_a_resource(module: str) -> None:
    offences = []
    for node in ast.walk(asset_tree(module)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            receiver = " ".join(_names(node.func.value)).lower()
            if node.func.attr == "get" and "settings" in receiver:
                offences.append(f"line {node.lineno}: {ast.unparse(node)}")
        if isinstance(node, ast.Attribute) and node.attr in ("with_settings", "environ"):
            offences.append(f"line {node.lineno}: {ast.unparse(node)}")
        if isinstance(node, ast.Name) and node.id in ("load_settings", "get_settings", "getenv"):
            offences.append(f"line {node.lineno}: {node.id}")
    assert offences == []


@pytest.mark.parametrize("module", ASSET_MODULES)
def test_no_asset_branches_on_a_missing_client(module: str) -> None:
    offences = []
    for node in ast.walk(asset_tree(module)):
        if isinstance(node, ast.Compare) and any(isinstance(op, (ast.Is, ast.IsNot)) for op in node.ops):
            named = [name.lower() for name in _names(node)]
            if any(name.endswith(("client", "chat")) or name in ("lusha", "zerobounce", "tavily", "openai")
                   for name in named):
                offences.append(f"line {node.lineno}: {ast.unparse(node)}")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "isinstance":
            if "Null" in ast.unparse(node):
                offences.append(f"line {node.lineno}: {ast.unparse(node)}")
    assert offences == []


@pytest.mark.parametrize("module", [acra, contacts, enrichment, night_checks, night_stages, public_facts, reports,
                                    scores, targets, tenants],
                         ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_db_functions_take_the_tenant_from_the_transaction(module) -> None:
    short = module.__name__.rsplit(".", 1)[-1]
    taking_tenant = [name for name, function in inspect.getmembers(module, inspect.isfunction)
                     if function.__module__ == module.__name__ and not name.startswith("_")
                     and "tenant_id" in inspect.signature(function).parameters and (short, name) not in CROSS_TENANT]
    assert taking_tenant == []
