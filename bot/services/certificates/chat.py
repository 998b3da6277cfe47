"""The applicant's certificate commands: 我的证书, 续期, 确认续期 订单号, 重新续期 订单号
(declared in the applicant's command table); and the loss report's check and hold when the
挂失/解挂 form is submitted (the form itself runs in ``Dialogue``)."""

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.exc import StaleDataError

from bot.domain.lifecycle import OrderType
from bot.domain.order_numbers import parse_order_number
from bot.services.certificates.jobs import CertificateJobs, Held, LossDesk
from bot.services.certificates.office import CertificateOffice, CertificateRefused
from bot.services.messages import Account
from storage.models import Certificate, Handler, Order


class CertificateChat:
    def __init__(self, office: CertificateOffice, jobs: CertificateJobs) -> None:
        self.office = office
        self.jobs = jobs
        self.loss = LossDesk(office)

    async def renew(self, account: Account, handler: Handler, argument: str) -> list[str]:
        return [await self.jobs.start_renewal(handler, str(account))]

    async def confirm_renewal(self, account: Account, handler: Handler,
                              argument: str) -> list[str]:
        number = parse_order_number(argument)
        if number is None:
            return ["请在「确认续期」后面写上续期订单号，例如「确认续期 XQ-261125-7KQ3」。"]
        return [await self.jobs.confirm_renewal(account, handler, number)]

    async def retry_renewal(self, account: Account, handler: Handler,
                            argument: str) -> list[str]:
        """重新续期 订单号: the company's own paid renewal, after its UKEY step failed."""
        number = parse_order_number(argument)
        if number is None:
            return ["请在「重新续期」后面写上续期订单号，例如「重新续期 XQ-261125-7KQ3」。"]
        try:
            retried = await self.jobs.retry(number, OrderType.RENEWAL, str(account),
                                            company_id=handler.company_id)
        except CertificateRefused as refusal:
            return [str(refusal)]
        except StaleDataError:  # retried at the same moment by someone else: theirs stands
            return [f"续期订单 {number} 刚被重新安排过，发送「解锁状态 {number}」查看进度。"]
        where = ("请保持 UKEY 插在运行着密钥代理的电脑上" if retried.online else
                 "您的密钥代理现在不在线：请在插着 UKEY 的电脑上运行「cadesk-agent run」")
        pin = "，并按电脑上的提示输入 UKEY 密码" if retried.kind == "request" else ""
        return [f"已重新安排续期订单 {number}（{retried.step}）。{where}{pin}，"
                "新证书会直接写入 UKEY，完成后通知您。"]

    async def my_certificates(self, account: Account, handler: Handler,
                              argument: str) -> list[str]:
        return [await self._list(handler)]

    async def _list(self, handler: Handler) -> str:
        certs = await self.office.of_company(handler.company_id)
        if not certs:
            return "本单位还没有本中心签发的证书。新办请发送「新办证书」。"
        lines = [f"【{handler.company.name}】的证书（{len(certs)} 张）："]
        lines += [f"{i}. {self.office.describe(c)}" for i, c in enumerate(certs, 1)]
        lines.append("续期请发送「续期」；UKEY 丢失请发送「挂失」，找回后发送「解挂」。")
        return "\n".join(lines)

    async def loss_answers(self, handler: Handler, apply_kind: str) -> dict[str, str]:
        """A 挂失/解挂 form's UKEY and certificate, filled in when the company has one UKEY it
        could be about (see ``LossDesk.known_answers``)."""
        return await self.loss.known_answers(handler, apply_kind)

    async def check_loss(self, session: AsyncSession, handler: Handler,
                         values: dict[str, str]) -> Certificate:
        """Before a 挂失/解挂 is filed: the certificate must be this company's, on that UKEY
        (raises ``CertificateRefused`` saying what to correct)."""
        return await self.loss.certificate_for(session, handler, values)

    async def loss_filed(self, session: AsyncSession, order: Order, cert: Certificate,
                         actor: str) -> Held | None:
        """In the filing transaction: a 挂失 holds every valid certificate on the UKEY at once
        (None for a 解挂); the company's other verified handlers are told in the same
        transaction."""
        return await self.loss.on_filed(session, order, cert, actor)
