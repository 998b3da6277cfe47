"""The form engine without a bot: the rules every conversation follows."""

import random

from bot.domain.flow import FlowState, FormFlow, Mode
from bot.domain.forms import BINDING, CERTIFICATE
from bot.domain.scans import ScanInfo
from bot.samples import fake_id_number, fake_uscc

RNG = random.Random(7)
PRESETS = {"cert_type": "机构证书", "apply_kind": "新办", "company_name": "临沂测试建设有限公司",
           "org_id_type": "统一社会信用代码", "org_id": fake_uscc(RNG)}
ID_NUMBER = fake_id_number(RNG, ends_with_x=True)


def scan(n: int) -> ScanInfo:
    return ScanInfo(sha256=f"{n:064x}", format="JPEG", size=200_000, width=1240, height=1754)


def start() -> FormFlow:
    flow, _ = FormFlow.start(CERTIFICATE, PRESETS)
    return flow


def answer_all(flow: FormFlow, pickup: str = "邮寄") -> None:
    for text in ("1", "临沂", "1", "张三", ID_NUMBER, "13812345678", pickup):
        flow.handle_text(text)
    if pickup == "邮寄":
        flow.handle_text("山东省临沂市兰山区")
        flow.handle_text("金雀山路 1 号 某某大厦 5 楼")
    for n in range(4):
        flow.handle_scan(scan(n))


def test_questions_name_the_field_and_count_steps() -> None:
    _flow, outcome = FormFlow.start(CERTIFICATE, PRESETS)
    assert "请选择【证书年限】（第 1/13 项）" in outcome.replies[-1]
    assert "1. 1年" in outcome.replies[-1]


def test_presets_are_not_asked_but_shown_in_the_summary() -> None:
    flow = start()
    answer_all(flow)
    assert flow.state.mode is Mode.SUMMARY
    summary = flow.prompt()
    assert "公司名称：临沂测试建设有限公司" in summary
    assert "机构证件号：" + PRESETS["org_id"] in summary


def test_summary_masks_id_and_mobile() -> None:
    flow = start()
    answer_all(flow)
    summary = flow.summary()
    assert ID_NUMBER not in summary
    assert "13812345678" not in summary
    assert "138****5678" in summary
    assert ID_NUMBER[-4:] in summary


def test_invalid_answer_keeps_the_field_and_the_earlier_answers() -> None:
    flow = start()
    for text in ("2", "临沂", "1", "张三"):
        flow.handle_text(text)
    outcome = flow.handle_text(ID_NUMBER[:-1] + "0")
    assert "校验位" in outcome.replies[0]
    assert "【经办人身份证号】" in outcome.replies[0]
    assert flow.state.position == "handler_id_number"
    assert flow.state.values["years"] == "2年"
    assert flow.state.values["handler_name"] == "张三"


def test_back_reasks_the_previous_field_showing_the_old_answer() -> None:
    flow = start()
    flow.handle_text("2")
    outcome = flow.handle_text("上一步")
    assert "【证书年限】" in outcome.replies[0]
    assert "原填写：2年" in outcome.replies[0]
    assert "已经是第一项" in flow.handle_text("上一步").replies[0]


def test_self_pickup_skips_the_address_and_posting_asks_it() -> None:
    flow = start()
    answer_all(flow, pickup="自取")
    assert "地级市" not in flow.summary()
    assert len(flow.asked_fields()) == 11
    # change to posting from the summary: the two address fields are asked, then back to summary
    flow.handle_text("修改 7")
    outcome = flow.handle_text("邮寄")
    assert "【地级市】" in outcome.replies[-1]
    flow.handle_text("山东省临沂市兰山区")
    outcome = flow.handle_text("金雀山路 1 号")
    assert flow.state.mode is Mode.SUMMARY
    assert "邮寄地址：金雀山路 1 号" in outcome.replies[-1]


def test_edit_from_summary_returns_to_summary() -> None:
    flow = start()
    answer_all(flow)
    outcome = flow.handle_text("修改 4")
    assert "【经办人姓名】" in outcome.replies[0]
    outcome = flow.handle_text("李四")
    assert flow.state.mode is Mode.SUMMARY
    assert "4. 经办人姓名：李四" in outcome.replies[0]
    assert "没有第 99 项" in flow.handle_text("修改 99").replies[0]


def test_moot_answers_are_dropped_from_the_result() -> None:
    flow = start()
    answer_all(flow, pickup="邮寄")
    flow.handle_text("修改 7")
    flow.handle_text("自取")
    values, scans = flow.result()
    assert "address" not in values
    assert "city" not in values
    assert len(scans) == 4
    assert values["org_id"] == PRESETS["org_id"]


def test_cancel_asks_first_and_other_answers_resume() -> None:
    flow = start()
    flow.handle_text("1")
    outcome = flow.handle_text("取消")
    assert "确定要放弃" in outcome.replies[0]
    assert not outcome.cancelled
    outcome = flow.handle_text("不")
    assert not outcome.cancelled
    assert "【项目所属地区】" in outcome.replies[-1]
    flow.handle_text("取消")
    assert flow.handle_text("是").cancelled


def test_text_when_a_scan_is_expected_and_help() -> None:
    flow = start()
    answer_all(flow)
    flow.handle_text("修改 10")
    assert flow.expects_scan
    assert "请直接发送图片" in flow.handle_text("好的").replies[0]
    assert "加盖单位公章" in flow.handle_text("帮助").replies[0]


def test_state_survives_json_round_trip_mid_flow() -> None:
    import json

    flow = start()
    for text in ("1", "临沂", "1"):
        flow.handle_text(text)
    flow.handle_text("取消")
    restored = FormFlow(FlowState.from_json(json.loads(json.dumps(flow.state.to_json()))))
    assert restored.state.mode is Mode.CONFIRM_CANCEL
    outcome = restored.handle_text("继续填写")
    assert "【经办人姓名】" in outcome.replies[-1]


def test_paused_flow_waits_for_resume() -> None:
    flow = start()
    flow.handle_text("1")
    flow.pause()
    outcome = flow.handle_text("临沂")
    assert "未完成的【证书新办/补办】（已填写 1/13 项）" in outcome.replies[0]
    assert "region" not in flow.state.values
    outcome = flow.handle_text("继续")
    assert "【项目所属地区】" in outcome.replies[-1]


def test_binding_finishes_without_a_summary_and_needs_agreement() -> None:
    flow, _ = FormFlow.start(BINDING)
    flow.handle_text(fake_uscc(RNG))
    flow.handle_text("临沂测试建设有限公司")
    refused = flow.handle_text("2")
    assert "须同意注册协议" in refused.replies[0]
    assert not refused.finished
    assert not flow.handle_text("同意").finished
    assert "【联系电话】" in flow.handle_text("王小明").replies[-1]
    assert flow.handle_text("13812345678").finished


# --- remembered answers (issue 13): offered with the question, taken with one reply ---------
REMEMBERED = {"handler_name": "王小明", "handler_id_number": ID_NUMBER, "mobile": "13812345678",
              "self_pickup": "邮寄", "city": "山东省临沂市兰山区", "address": "金雀山路 1 号"}


def start_remembering(**suggested: str) -> tuple[FormFlow, str]:
    flow, outcome = FormFlow.start(CERTIFICATE, PRESETS, defaults=REMEMBERED,
                                   suggested=suggested or None)
    return flow, outcome.replies[-1]


def test_a_remembered_text_answer_is_offered_and_1_takes_it() -> None:
    flow, _ = start_remembering()
    for text in ("2", "临沂"):
        flow.handle_text(text)
    asked = flow.handle_text("1").replies[-1]
    assert "【经办人姓名】" in asked
    assert "沿用上次：王小明（回复 1 沿用）" in asked
    asked = flow.handle_text("1").replies[-1]
    assert flow.state.values["handler_name"] == "王小明"
    # the ID number and the mobile offered masked, kept in full
    assert "【经办人身份证号】" in asked
    assert ID_NUMBER not in asked
    assert f"沿用上次：{ID_NUMBER[:3]}" in asked
    assert "（回复 1 沿用）" in asked
    asked = flow.handle_text("1").replies[-1]
    assert flow.state.values["handler_id_number"] == ID_NUMBER
    assert "沿用上次：138****5678（回复 1 沿用）" in asked
    flow.handle_text("１")  # full-width, as phones type it
    assert flow.state.values["mobile"] == "13812345678"


def test_a_new_answer_replaces_the_remembered_one() -> None:
    flow, _ = start_remembering()
    for text in ("2", "临沂", "1", "李四"):
        flow.handle_text(text)
    assert flow.state.values["handler_name"] == "李四"
    assert "沿用上次" not in flow.handle_text("上一步").replies[-1]  # answered: 原填写 instead


def test_on_a_choice_1_is_option_1_and_the_remembered_option_has_its_own_number() -> None:
    flow, _ = start_remembering()
    for text in ("2", "临沂", "1", "1", "1"):
        flow.handle_text(text)
    asked = flow.handle_text("1").replies[-1]
    assert "【是否自取】" in asked
    assert "沿用上次：邮寄（回复 2 沿用）" in asked
    flow.handle_text("1")
    assert flow.state.values["self_pickup"] == "自取"  # option 1, not the remembered 邮寄
    flow.handle_text("上一步")
    flow.state.values.pop("self_pickup")
    flow.handle_text("沿用")  # the word takes the offer on any field
    assert flow.state.values["self_pickup"] == "邮寄"
    assert "沿用上次：山东省临沂市兰山区（回复 1 沿用）" in flow.prompt()


def test_keep_on_a_field_with_nothing_remembered_says_so() -> None:
    flow, _ = start_remembering()
    reply = flow.handle_text("沿用").replies[0]
    assert "没有可以沿用的内容" in reply
    assert "years" not in flow.state.values


def test_a_remembered_answer_no_longer_valid_is_refused_and_not_offered_again() -> None:
    flow, _ = FormFlow.start(CERTIFICATE, PRESETS, defaults={"handler_name": "Wang"})
    for text in ("2", "临沂", "1"):
        flow.handle_text(text)
    assert "沿用上次：Wang" in flow.prompt()
    assert "中文姓名" in flow.handle_text("1").replies[0]
    assert "沿用上次" not in flow.prompt()


def test_the_centres_city_is_suggested_and_a_remembered_region_wins() -> None:
    flow, _ = FormFlow.start(CERTIFICATE, PRESETS, suggested={"region": "临沂"})
    flow.handle_text("2")
    asked = flow.prompt()
    assert "建议：临沂（回复 12 选择）" in asked
    assert "沿用上次" not in asked
    flow.handle_text("12")
    assert flow.state.values["region"] == "临沂"
    flow, _ = FormFlow.start(CERTIFICATE, PRESETS, defaults={"region": "青岛"},
                              suggested={"region": "临沂"})
    flow.handle_text("2")
    assert "沿用上次：青岛（回复 2 沿用）" in flow.prompt()


def test_offers_survive_a_json_round_trip() -> None:
    import json

    flow, _ = start_remembering(region="临沂")
    restored = FormFlow(FlowState.from_json(json.loads(json.dumps(flow.state.to_json()))))
    restored.handle_text("2")
    assert "建议：临沂" in restored.prompt()
    restored.handle_text("沿用")
    assert restored.state.values["region"] == "临沂"


def test_an_old_saved_state_without_offers_still_loads() -> None:
    data = start().state.to_json()
    del data["defaults"], data["suggested"]
    assert "【证书年限】" in FormFlow(FlowState.from_json(data)).prompt()


def test_a_field_reopened_after_the_summary_takes_edit_n() -> None:
    """Issue 13: a check beyond the form re-asks one field; 修改 N then picks another."""
    flow = start()
    answer_all(flow)
    outcome = flow.reopen("handler_id_number", "身份证号与授权书不一致。")
    assert "【经办人身份证号】" in outcome.replies[0]
    asked = flow.handle_text("修改 4").replies[-1]
    assert "【经办人姓名】" in asked
    assert "校验位" not in asked
    flow.handle_text("李四")
    assert "【经办人身份证号】" in flow.prompt()  # still missing: asked next
    flow.handle_text(ID_NUMBER)
    assert flow.state.mode is Mode.SUMMARY


def test_recall_after_a_command_asks_the_question_again() -> None:
    flow = start()
    flow.handle_text("1")
    recalled = flow.recall()
    assert "未完成的【证书新办/补办】（已填写 1/13 项）" in recalled
    assert "【项目所属地区】" in recalled
    flow.pause()
    assert "回复「继续」" in flow.recall()
    assert "【项目所属地区】" not in flow.recall()


def test_help_on_a_remembered_field_says_how_to_take_it() -> None:
    flow, _ = start_remembering()
    for text in ("2", "临沂", "1"):
        flow.handle_text(text)
    helped = flow.handle_text("帮助").replies[0]
    assert "沿用上次：王小明（回复 1 沿用）" in helped
    assert "直接回复新的内容" in helped
