"""Anonymous hellos on /agent/ws against the running bot: a refused hello counts for the
caller's address, the address is refused after ten, and the staff hear once, not fifty times."""

import aiohttp

from tests.support.onebot_peer import TECHNICIAN, TOKEN, OneBotPeer, make_instance

NASTY = "12<script>alert(1)</script>138 1234 5678\n@全体成员 请立即转账"


async def hello(http: aiohttp.ClientSession, port: int, agent_id: object) -> tuple[str, int]:
    """One connection saying hello as ``agent_id``: (the refusal's code, the close code)."""
    async with http.ws_connect(f"ws://127.0.0.1:{port}/agent/ws") as socket:
        answer = await socket.receive_json(timeout=10)
        if answer["type"] == "challenge":
            await socket.send_json({"type": "hello", "agent_id": agent_id, "proof": "AAAA"})
            answer = await socket.receive_json(timeout=10)
        assert answer["type"] == "refused"
        await socket.receive(timeout=10)  # the close frame
        return answer["code"], socket.close_code or 0


async def test_fifty_bad_hellos_are_limited_and_the_staff_hear_once(tmp_path) -> None:
    bot, port = make_instance(tmp_path, f"""
[staff]
technicians = ["qq:{TECHNICIAN}"]
[agents]
enabled = true
""")
    await bot.start()
    peer = OneBotPeer(port, TOKEN)
    try:
        await peer.connect()
        claimed = [NASTY, 4242, "99999999999999999999999", "7", {"x": 1}]
        async with aiohttp.ClientSession() as http:
            answers = [await hello(http, port, claimed[n % len(claimed)]) for n in range(50)]
        assert answers[:10] == [("unknown_agent", 4403)] * 10
        assert answers[10:] == [("too_many_attempts", 4429)] * 40  # refused before the hello

        told = [text for _, text in await peer.replies_until("拒绝了密钥代理")]
        told += [text for _, text in await peer.replies_for(5)]
        assert len(told) == 1  # not fifty
        [notice] = told
        assert "拒绝了密钥代理 12scriptaler… 的连接" in notice  # the claimed id, cleaned, clipped
        for attacker_said in ("<script", "转账", "全体成员", "1234"):
            assert attacker_said not in notice
    finally:
        await peer.close()
        await bot.stop()
    log = (tmp_path / "bot.log").read_text(errors="replace")
    assert "[ERROR]" not in log
    assert log.count("refused: too_many_attempts") == 40  # each limited attempt is logged
