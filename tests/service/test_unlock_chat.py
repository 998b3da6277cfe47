"""证书解锁 in the chat: the password-reset form, its three scans, and the same review queue."""

from nonebug import App

from tests.support.chat import ALICE, Applicant, Technician
from tests.support.helpers import Says, ScanServer, image


async def test_unlock_by_chat_lands_in_the_review_queue(app: App, scan_server: ScanServer) -> None:
    user = Applicant(app)
    await user.bind()
    await user.says("解锁", Says("开始办理【证书解锁】"), Says("请输入【单位地址】（第 1/9 项）"))
    await user.says("临沂市兰山区金雀山路 1 号", Says("【法定代表人姓名】"))
    await user.says("王五", Says("【单位电话】"))
    await user.says("12345", Says("带区号的座机号码", "【单位电话】"))
    await user.says("0539-8123456", Says("【经办人姓名】"))
    await user.says("张三", Says("【经办人手机号】"))
    await user.says("13812345678", Says("【经办人身份证号】"))
    # the reset form comes back filled in (a picture to print) before its scan is asked for
    await user.says(user.id_number, Says("密码重置申请表】已按您刚才填写的内容预先填好"),
                    Says("CA数字证书密码重置申请表\n[CQ:image,file=base64://"),
                    Says("【附件一 CA数字证书密码重置申请表】", "因CA锁密码忘记",
                         "发送「模板」可获取空白表格"))
    await user.says(image(user.scan_url(scan_server, 1)), Says("已收到"),
                    Says("【附件二 营业执照复印件】"))
    await user.says(image(user.scan_url(scan_server, 2)), Says("已收到"),
                    Says("【附件三 经办人身份证复印件】"))
    await user.says(image(user.scan_url(scan_server, 3)), Says("已收到"),
                    Says("请核对【证书解锁】", f"统一社会信用代码：{user.uscc}",
                         "6. 经办人身份证号：", absent=(user.id_number,)))
    number = await user.submit(Says("【证书解锁】JS-", "新订单待审核"))
    assert number.startswith("JS-")

    alice = Technician(app, ALICE)
    await alice.says("待审核", Says(number, "证书解锁", user.company))
    await alice.says(
        f"驳回 {number} 申请表没有盖章", Says("已驳回", "附件一 CA数字证书密码重置申请表"),
        tells=((user.user_id, Says("需要修改：附件一 CA数字证书密码重置申请表")),))
    await user.says(f"修改 {number}", Says("需要重新提供：附件一"), Says("预先填好"),
                    Says("[CQ:image"), Says("【附件一"))
    await user.says(image(user.scan_url(scan_server, 4)), Says("已收到"), Says("请核对"))
    await user.says("确认提交", Says("已重新提交"), staff=Says("已重新提交", number))
    await alice.says(f"通过 {number}", Says(f"已通过订单 {number}。"),
                     tells=((user.user_id, Says("已审核通过", "重置 UKEY 密码")),))
    await alice.says(f"收款 {number}", Says("该订单审核通过，不能收款"))
    await alice.says(f"完成 {number}", Says("已办结"), tells=((user.user_id, Says("已办结")),))
