"""The member's own card (member_web.card) on SQLite and PostgreSQL with a real till: the
balance, pending points and last cheque after a synced sale, the tier and what is left to
the next, and the card's rotating QR token (the back office's member_token) identified by
the till with no network at all, and refused past its lifetime."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cluster import Cluster
from synchelp import portal

from agent.errors import AgentError
from sync.backoffice.member_web import CardNotFound

M1 = "m00000001"


@pytest.fixture
def cluster(tmp_path: Path, db_url: str) -> Iterator[Cluster]:
    with portal() as p:
        c = Cluster(tmp_path, db_url, p, members=5)
        yield c
        c.close()


def test_card_after_a_sale_and_its_token_at_an_offline_till(cluster: Cluster) -> None:
    till = cluster.till()
    res = till.sale("R1", M1, ("DR-1001", 2))
    till.client.drain()
    card = cluster.bo.member_card(M1)
    assert card.balance == cluster.server_balance(M1)
    assert len(card.history) == 1 and card.history[0][2] == res.quote.total_earned
    assert sum(p.points for p in card.pending) == res.quote.total_earned
    rules = cluster.bo.rules()
    assert rules is not None
    assert card.tier_ru == rules.tier_for_spend(card.spend_kop).name_ru
    nxt = rules.next_tier(rules.tier_for_spend(card.spend_kop))
    assert nxt is not None and card.to_next_kop == nxt.threshold_kop - card.spend_kop
    token = cluster.bo.member_token(card.code)["token"]

    def unreachable(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("offline", request=request)

    till.client.http = httpx.Client(transport=httpx.MockTransport(unreachable))
    assert till.agent.identify(token).member_id == M1
    cluster.clock.advance(seconds=362)  # past the 300 s lifetime and the 60 s drift leeway
    with pytest.raises(AgentError):
        till.agent.identify(token)


def test_unknown_card(cluster: Cluster) -> None:
    with pytest.raises(CardNotFound):
        cluster.bo.member_card("m-nobody")
