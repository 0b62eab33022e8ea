"""docs/cache.md against the code: the ACL rules it shows are the ones the code sets, the
metrics it lists are the ones registered, the kinds and TTLs are the defaults."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client import CollectorRegistry

from suho_mt5.cache import CacheTTLs
from suho_mt5.cache.acl import TENANT_RULES, WRITER_RULES
from suho_mt5.cache.metrics import CacheMetrics

DOC = (Path(__file__).resolve().parents[3] / "docs" / "cache.md").read_text()


def test_the_acl_rules_shown_are_the_ones_set() -> None:
    tenant = re.search(r"ACL SETUSER suho-tenant-acme on >PASSWORD (\S+) (.*)", DOC)
    writer = re.search(r"ACL SETUSER suho-writer on >PASSWORD (\S+) (.*)", DOC)
    assert tenant is not None and writer is not None
    assert tenant[1] == "~suho:{acme}:*" and tuple(tenant[2].split()) == TENANT_RULES
    assert writer[1] == "~suho:*" and tuple(writer[2].split()) == WRITER_RULES


def test_the_metrics_listed_are_the_ones_registered() -> None:
    registry = CollectorRegistry()
    CacheMetrics(registry)
    registered = set()
    for family in registry.collect():
        name = family.name + ("_total" if family.type == "counter" else "")
        registered.add(name)
    listed = set(re.findall(r"^\| `(suho_cache_[a-z_]+)(?:\{[^}]*\})?` \|", DOC, re.M))
    assert listed == registered


def test_the_default_ttls_are_the_documented_ones() -> None:
    ttls = CacheTTLs()
    assert (ttls.quote.total_seconds(), ttls.reference.total_seconds(),
            ttls.snapshot.total_seconds(), ttls.status.total_seconds(),
            ttls.signals.total_seconds(), ttls.closing.total_seconds()) == (
        300, 300, 3600, 86400, 86400, 600)
    for text in ("| 5 min |", "| 1 h |", "| 1 day |", "(10 min)"):
        assert text in DOC
