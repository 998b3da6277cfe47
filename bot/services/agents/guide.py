"""Getting the key agent onto the clerk's PC: the installable package the bot serves, the
one-page guide in Chinese, and the commands the chat gives with the pairing code filled in.

The package is a wheel of ``bot/key_agent`` alone (``cadesk-agent``), assembled in memory from
the bot's own files: a wheel is a zip with three small metadata files, so no build tool runs on
the server and the agent served is always the one the bot speaks to. It holds no compiled code;
pip fetches python-pkcs11 and the rest on the clerk's PC (``AGENT_REQUIREMENTS``).
"""

import base64
import hashlib
import html
import io
import zipfile
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from pathlib import Path

from bot import key_agent
from bot.config import Settings

GUIDE_PATH = "/agent/"
DOWNLOAD_PATH = "/agent/download/"
DISTRIBUTION = "cadesk-agent"
# What bot/key_agent imports beyond the standard library (a test compares it with the imports).
AGENT_REQUIREMENTS = ("aiohttp>=3.10,<4", "python-pkcs11>=0.10", "cryptography>=44",
                      "asn1crypto>=1.5", "loguru>=0.7")
MODULE_PLACEHOLDER = "UKEY驱动文件路径"
_AGENT_SOURCES = Path(key_agent.__file__).resolve().parent
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # the same files make the same bytes


@dataclass(frozen=True)
class AgentWheel:
    filename: str  # cadesk_agent-0.1.0-py3-none-any.whl, as pip requires wheels to be named
    data: bytes


def version() -> str:
    try:
        return metadata.version("cadesk")
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "0.0.0"


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "sha256=" + digest.decode()


@cache
def agent_wheel() -> AgentWheel:
    """The agent as a pure-Python wheel (built once per process)."""
    ver = version()
    info = f"cadesk_agent-{ver}.dist-info"
    files: dict[str, bytes] = {
        "bot/__init__.py": b'"""cadesk: only its key agent (cadesk-agent) is installed here."""\n',
    }
    for source in sorted(_AGENT_SOURCES.glob("*.py")):
        files[f"bot/key_agent/{source.name}"] = source.read_bytes()
    requires = "".join(f"Requires-Dist: {r}\n" for r in AGENT_REQUIREMENTS)
    files[f"{info}/METADATA"] = (
        f"Metadata-Version: 2.1\nName: {DISTRIBUTION}\nVersion: {ver}\n"
        "Summary: CA 数字证书密钥代理（cadesk）：在插着 UKEY 的电脑上完成远程解锁、续期\n"
        f"Requires-Python: >=3.11\n{requires}").encode()
    files[f"{info}/WHEEL"] = (b"Wheel-Version: 1.0\nGenerator: cadesk\n"
                              b"Root-Is-Purelib: true\nTag: py3-none-any\n")
    files[f"{info}/entry_points.txt"] = (b"[console_scripts]\n"
                                         b"cadesk-agent = bot.key_agent.cli:main\n")
    record = "".join(f"{name},{_record_hash(data)},{len(data)}\n" for name, data in files.items())
    files[f"{info}/RECORD"] = (record + f"{info}/RECORD,,\n").encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as wheel:
        for name, data in files.items():
            entry = zipfile.ZipInfo(name, _ZIP_TIME)
            entry.external_attr = 0o644 << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            wheel.writestr(entry, data)
    return AgentWheel(f"cadesk_agent-{ver}-py3-none-any.whl", buffer.getvalue())


def guide_url(settings: Settings) -> str:
    return settings.public_url + GUIDE_PATH


def download_url(settings: Settings) -> str:
    return settings.public_url + DOWNLOAD_PATH + agent_wheel().filename


def install_command(settings: Settings) -> str:
    return f"py -m pip install {download_url(settings)}"


def pair_command(settings: Settings, code: str) -> str:
    module = settings.agents.ukey_module or MODULE_PLACEHOLDER
    return (f'cadesk-agent pair --server {settings.public_url} --code {code} '
            f'--module "{module}"')


def pairing_steps(settings: Settings, code: str) -> str:
    """What the chat says after a pairing code: install, pair, run, each command complete."""
    fill = ("" if settings.agents.ukey_module else
            f"（把「{MODULE_PLACEHOLDER}」换成 UKEY 厂商驱动的 .dll 文件路径，见说明页）")
    return (f"1. 安装（每台电脑一次，需先装好 Python 3.11 或更新版本）：\n"
            f"{install_command(settings)}\n"
            f"2. 绑定{fill}：\n{pair_command(settings, code)}\n"
            "3. 运行并保持窗口打开：\ncadesk-agent run\n"
            "技术人员通过解锁申请后，窗口会提示「请输入新密码」「请再次输入新密码」，"
            "输入您想设置的新密码两次即可。\n"
            f"图文说明：{guide_url(settings)}")


def guide_page(settings: Settings) -> str:
    """The one-page guide (GET /agent/): what the agent is, install, pair, run, what to type."""
    e = html.escape
    module = settings.agents.ukey_module or MODULE_PLACEHOLDER
    pair = pair_command(settings, "绑定码")
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>密钥代理使用说明</title>
<style>body{{font-family:sans-serif;max-width:46em;margin:2em auto;padding:0 1em;line-height:1.7}}
code,pre{{background:#f4f4f4;padding:.1em .3em}}pre{{padding:.6em;white-space:pre-wrap}}</style>
</head><body>
<h1>密钥代理使用说明</h1>
<p>密钥代理是一个装在<strong>插着 UKEY 的电脑</strong>上的小程序。忘记 UKEY 密码申请「解锁」、
或者证书「续期」时，CA 服务中心通过它在您的电脑上完成操作，您不用跑服务大厅，也不用让技术人员
远程控制电脑。新密码只在您的电脑上输入，不会发给任何人。</p>

<h2>1. 安装（每台电脑一次）</h2>
<ol>
<li>从 <a href="https://www.python.org/downloads/">python.org</a> 安装 Python 3.11 或更新版本，
安装时勾选「Add python.exe to PATH」。</li>
<li>打开「命令提示符」（开始菜单里搜索 cmd），输入下面这行后回车：
<pre>{e(install_command(settings))}</pre>
也可以先<a href="{e(download_url(settings))}">下载安装包</a>（{e(agent_wheel().filename)}），
再运行 <code>py -m pip install 安装包文件名</code>。</li>
</ol>

<h2>2. 绑定本机（只需一次）</h2>
<p>在聊天中发送「绑定密钥代理」，机器人会回复一次性的绑定码和完整的命令，复制到命令提示符里运行，
形如：</p>
<pre>{e(pair)}</pre>
<p><code>--module</code> 后面是 UKEY 厂商的驱动文件（随 UKEY 驱动安装，Windows 上是一个 .dll
文件{"" if settings.agents.ukey_module else "，文件位置见 UKEY 厂商的说明"}）：
<code>{e(module)}</code>。绑定码几分钟内有效、只能用一次，请勿告诉他人。
看到「绑定成功」即可。</p>

<h2>3. 办理时运行</h2>
<p>在同一个文件夹里运行下面的命令，办理解锁、续期期间<strong>保持窗口打开、UKEY 插着</strong>：</p>
<pre>cadesk-agent run</pre>

<h2>4. 窗口里要输入什么</h2>
<ul>
<li><strong>解锁</strong>：技术人员通过您的解锁申请后，窗口提示<strong>「请输入新密码」</strong>，
输入您想设置的新 UKEY 密码后回车（输入时屏幕不显示），再按提示<strong>「请再次输入新密码」</strong>
输入一次。完成后聊天里会通知您，之后请用新密码。</li>
<li><strong>续期</strong>：窗口提示输入 UKEY 密码时，输入您现在使用的 UKEY 密码。</li>
</ul>

<h2>常见问题</h2>
<ul>
<li>提示「连接不上服务」：检查网络，确认命令里的网址与聊天中给出的一致；程序会自动重连。</li>
<li>提示「没有找到 UKEY」：把 UKEY 插好，只插一个。</li>
<li>提示「绑定码无效、已使用或已过期」：在聊天中重新发送「绑定密钥代理」获取新的绑定码。</li>
<li>查看命令说明：<code>cadesk-agent --help</code>。</li>
</ul>
</body></html>
"""
