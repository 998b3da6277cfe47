"""End to end: a certificate made, renewed, put on hold and released entirely from chat commands
over OneBot v11, by a real bot process and two separately started agent processes (the service
hall's and the applicant's) on a SoftHSM2 UKEY; the CA certificate and the CRL fetched over the
bot's HTTP server; openssl and pkcs11-tool check every step."""

import os
import random
import re
import subprocess
from pathlib import Path

import aiohttp

from bot.samples import fake_id_number, fake_uscc, sample_scan
from tests.support.agent_process import start_agent
from tests.support.helpers import PENDING_BINDING, ScanServer, verify_in_database
from tests.support.onebot_peer import (
    PKI_CONFIG,
    TECHNICIAN,
    TOKEN,
    USER,
    OneBotPeer,
    make_instance,
    picture,
    talker,
    text,
)
from tests.support.softhsm import MODULE, new_token, softhsm

FACTORY_SO_PIN = "12345678"


def openssl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)


async def fetch_pem(port: int, path: str, kind: str, into: Path) -> Path:
    """GET a DER object from the bot and turn it into PEM with openssl (``kind``: x509, crl)."""
    async with aiohttp.ClientSession() as session, session.get(
            f"http://127.0.0.1:{port}{path}") as response:
        assert response.status == 200
        der = await response.read()
    return der_to_pem(kind, der, into)


def der_to_pem(kind: str, der: bytes, into: Path) -> Path:
    subprocess.run(["openssl", kind, "-inform", "DER", "-out", str(into)], input=der,
                   check=True, capture_output=True)
    return into


def certificate_on(label: str, into: Path) -> Path:
    """The certificate as pkcs11-tool reads it off the UKEY."""
    der = subprocess.run(["pkcs11-tool", "--module", MODULE, "--token-label", label,
                          "--read-object", "--type", "cert", "--label", "cadesk"],
                         check=True, capture_output=True).stdout
    return der_to_pem("x509", der, into)


def trusted(port_files: dict[str, Path], cert: Path) -> bool:
    """openssl's verdict on the certificate against the CA and the CRL the bot serves."""
    result = openssl("verify", "-crl_check", "-CAfile", str(port_files["ca"]),
                     "-CRLfile", str(port_files["crl"]), str(cert))
    return result.returncode == 0


async def test_issue_renew_hold_and_release_from_the_chat(tmp_path: Path,
                                                          scan_server: ScanServer) -> None:
    rng = random.Random(66)
    uscc = fake_uscc(rng)
    urls = [scan_server.add(f"pki-{n}.jpg", sample_scan(f"pki {n}")) for n in range(4)]
    (tmp_path / "so-master.key").write_bytes(os.urandom(32))
    hall_dir, pc_dir = tmp_path / "hall-pc", tmp_path / "applicant-pc"
    hall_dir.mkdir()
    pc_dir.mkdir()
    processes = []
    with softhsm() as softhsm_conf:
        token = new_token("new-ukey", so_pin=FACTORY_SO_PIN, pin="000000")  # as shipped
        bot, port = make_instance(tmp_path, PKI_CONFIG)
        await bot.start()
        peer = OneBotPeer(port, TOKEN)
        try:
            await peer.connect()
            say = talker(peer)
            # the hall's agent, paired by a technician, knows the blank UKEYs' factory SO PIN
            reply = await say(TECHNICIAN, text("绑定制证代理"), "cadesk-agent pair")
            code = reply.split("--code ")[1].split()[0]
            processes.append(await start_agent(
                hall_dir, port, code, softhsm_conf,
                {"CADESK_AGENT_FACTORY_SO_PIN": FACTORY_SO_PIN}))

            number = await apply(say, uscc, urls, rng)
            # a technician verified the binding (续期 and 挂失 need it): see test_binding.py
            verify_in_database(tmp_path / "live-data" / "cadesk.db", USER)
            await say(TECHNICIAN, text(f"通过 {number}"), "已通过")
            await say(TECHNICIAN, text(f"收款 {number}"), f"制证 {number}")
            await say(TECHNICIAN, text(f"制证 {number}"), "制证")
            told = dict(await peer.replies_until("UKEY 初始密码", within=60))
            pin = re.search(r"UKEY 初始密码：(\d+)", told[f"user:{USER}"]).group(1)
            await peer.replies_until(f"订单 {number} 制证完成", within=30)
            await say(TECHNICIAN, text(f"待自取 {number}"), "已设为待自取")
            assert token.login_works(pin)

            files = {"ca": await fetch_pem(port, "/pki/ca.crt", "x509", tmp_path / "ca.pem"),
                     "crl": await fetch_pem(port, "/pki/crl", "crl", tmp_path / "crl.pem")}
            issued = certificate_on("new-ukey", tmp_path / "issued.pem")
            assert trusted(files, issued)

            # 续期 from the applicant's own PC: the same UKEY, the initial PIN
            reply = await say(USER, text("绑定密钥代理"), "cadesk-agent pair")
            code = reply.split("--code ")[1].split()[0]
            processes.append(await start_agent(pc_dir, port, code, softhsm_conf,
                                               {"CADESK_AGENT_PIN": pin}))
            await say(USER, text("续期"), "续期订单")
            summary = "\n".join(t for _, t in await peer.replies_until("当前截止日期",
                                                                       within=30))
            renewal = re.search(r"订单号：(XQ-\S+)", summary).group(1)
            await say(USER, text(f"确认续期 {renewal}"), "已提交续期订单")
            await say(TECHNICIAN, text(f"通过 {renewal}"), "已通过")
            await say(TECHNICIAN, text(f"收款 {renewal}"), "续期")
            done = "\n".join(t for _, t in await peer.replies_until("已完成", within=60))
            renewed = certificate_on("new-ukey", tmp_path / "renewed.pem")
            end = openssl("x509", "-in", str(renewed), "-noout", "-enddate").stdout
            year = int(re.search(r"(\d{4}) GMT", end).group(1))
            before = openssl("x509", "-in", str(issued), "-noout", "-enddate").stdout
            assert year == int(re.search(r"(\d{4}) GMT", before).group(1)) + 1
            assert f"有效期至 {year}-" in done
            assert trusted(files, renewed)

            # 挂失 from the chat: untrusted at once, before any review; 解挂 after review
            serial = openssl("x509", "-in", str(renewed), "-noout", "-serial").stdout \
                .split("=")[1].strip().lower().lstrip("0")
            loss = await report(say, "挂失", token.serial, serial, rng)
            files["crl"] = await fetch_pem(port, "/pki/crl", "crl", tmp_path / "crl.pem")
            assert not trusted(files, renewed)
            held = openssl("crl", "-in", str(files["crl"]), "-noout", "-text").stdout
            assert "Certificate Hold" in held
            await say(TECHNICIAN, text(f"通过 {loss}"), f"已通过订单 {loss}")
            release = await report(say, "解挂", token.serial, serial, rng)
            await say(TECHNICIAN, text(f"通过 {release}"), f"已通过订单 {release}")
            files["crl"] = await fetch_pem(port, "/pki/crl", "crl", tmp_path / "crl.pem")
            assert trusted(files, renewed)
        finally:
            for process in processes:
                process.terminate()
                await process.wait()
            await peer.close()
            await bot.stop()
    log = (tmp_path / "bot.log").read_text(errors="replace")
    assert "[ERROR]" not in log
    assert pin not in log  # the initial PIN went to the applicant's chat only
    assert pin not in (hall_dir / "agent.log").read_text()
    assert (tmp_path / "live-data" / "pki" / "ca.crl").exists()


async def apply(say, uscc: str, urls: list[str], rng: random.Random) -> str:
    """Bind and file a 新办 order for pickup with its four scans; returns the order number."""
    steps = [("你好", "【统一社会信用代码】"), (uscc, "【单位名称】"),
             ("临沂制证测试有限公司", "【注册协议】"), ("同意", "【申报人】"), *PENDING_BINDING,
             ("新办证书", "【证书年限】"), ("1", "【项目所属地区】"), ("临沂", "【办理Ukey数量】"),
             ("1", "【经办人姓名】"), ("张三", "【经办人身份证号】"),
             (fake_id_number(rng), "【手机号】"), ("13812345678", "【是否自取】"),
             ("自取", "【附件一")]
    for answer, until in steps:
        await say(USER, text(answer), until)
    for url, until in zip(urls, ["【附件二", "【附件三", "【附件四", "确认提交"], strict=True):
        await say(USER, picture(url), until)
    done = await say(USER, text("确认提交"), "订单号：")
    return done.split("订单号：")[1].split()[0]


async def report(say, kind: str, token_serial: str, serial: str, rng: random.Random) -> str:
    # the company's only UKEY: its 卡号 and newest certificate filled in, not asked
    started = await say(USER, text(kind), "【经办人姓名】")
    assert f"卡号 {token_serial}，证书序列号 {serial}）" in started
    steps = [("张三", "【经办人身份证号】"), (fake_id_number(rng), "【手机号】"),
             ("13812345678", "确认提交")]
    for answer, until in steps:
        await say(USER, text(answer), until)
    done = await say(USER, text("确认提交"), "订单号：")
    return done.split("订单号：")[1].split()[0]
