"""The strings of the pages, per language (zh-CN first, English second)."""

from __future__ import annotations

from aiohttp import web

from alarms.grading import PRIORITY_NAMES
from hazardwatch.ledger.grading import GRADE_NAMES

LANG_COOKIE = "hw_lang"
DEFAULT_LANG = "zh"

ZH: dict[str, str] = {
    "html_lang": "zh-CN",
    "app_name": "重大危险源监测预警",
    "board_title": "实时报警",
    "login_title": "登录",
    "username": "用户名",
    "password": "密码",
    "login_button": "登录",
    "login_failed": "用户名或密码错误",
    "login_throttled": "登录失败次数过多，请稍后再试",
    "login_error": "登录失败，请稍后再试",
    "logout": "退出",
    "switch_lang": "English",
    "switch_lang_code": "en",
    "role_duty_officer": "值班员",
    "role_enterprise": "企业用户",
    "role_regulator": "监管人员",
    "role_sysadmin": "系统管理员",
    "role_secadmin": "安全管理员",
    "role_auditor": "审计管理员",
    "col_time": "报警时间",
    "col_priority": "级别",
    "col_enterprise": "企业",
    "col_hazard_source": "重大危险源",
    "col_tag": "位号",
    "col_condition": "报警类型",
    "col_value": "报警值 / 限值",
    "col_state": "状态",
    "col_actions": "操作",
    "state_UNACK": "未确认",
    "state_ACKED": "已确认",
    "state_RTN_UNACK": "已恢复未确认",
    "state_NORMAL": "已关闭",
    "state_SHELVED": "已搁置",
    "state_SUPPRESSED": "设计抑制",
    "state_OUT_OF_SERVICE": "停用",
    "cond_HH": "HH 高高报",
    "cond_H": "H 高报",
    "cond_L": "L 低报",
    "cond_LL": "LL 低低报",
    "cond_FAULT": "仪表故障",
    "cond_ROC": "变化率超限",
    "cond_FROZEN": "数值冻结",
    "cond_PREDICT": "趋势预警",
    "cond_STALE": "数据中断",
    "cond_VOTE": "多点表决报警",
    "cond_SOURCE": "重大危险源综合预警",
    "cond_GATEWAY_OFFLINE": "网关离线",
    "grade_suffix": "重大危险源",
    "ack": "确认",
    "ack_comment": "确认备注（可选）",
    "ack_failed": "确认失败",
    "acked_by": "确认人",
    "detail": "报警详情",
    "close": "关闭",
    "journal": "报警日志",
    "j_at": "时间",
    "j_actor": "操作人",
    "j_action": "动作",
    "j_state": "状态",
    "j_comment": "备注",
    "act_raise": "报警",
    "act_escalate": "升级",
    "act_deescalate": "降级",
    "act_reactivate": "再次报警",
    "act_clear": "恢复正常",
    "act_ack": "确认",
    "trend": "趋势（近 30 分钟）",
    "no_data": "暂无数据",
    "no_alarms": "当前无未关闭报警",
    "admin_no_alarms": "管理员账号不查看报警",
    "count": "共 {n} 条",
    "live_ok": "实时",
    "live_connecting": "连接中…",
    "live_down": "实时连接中断，正在重连",
    "limit": "限值",
    "equipment": "设备",
    "raised_at": "报警时间",
    "value": "报警值",
    "read_only": "只读",
}

EN: dict[str, str] = {
    "html_lang": "en",
    "app_name": "Major Hazard Monitoring",
    "board_title": "Live alarms",
    "login_title": "Sign in",
    "username": "Username",
    "password": "Password",
    "login_button": "Sign in",
    "login_failed": "Wrong username or password",
    "login_throttled": "Too many failed attempts; try again later",
    "login_error": "Sign-in failed; try again later",
    "logout": "Sign out",
    "switch_lang": "中文",
    "switch_lang_code": "zh",
    "role_duty_officer": "Duty officer",
    "role_enterprise": "Enterprise",
    "role_regulator": "Regulator",
    "role_sysadmin": "System admin",
    "role_secadmin": "Security admin",
    "role_auditor": "Audit admin",
    "col_time": "Raised",
    "col_priority": "Priority",
    "col_enterprise": "Enterprise",
    "col_hazard_source": "Hazard source",
    "col_tag": "Tag",
    "col_condition": "Condition",
    "col_value": "Value / limit",
    "col_state": "State",
    "col_actions": "Actions",
    "state_UNACK": "Unacknowledged",
    "state_ACKED": "Acknowledged",
    "state_RTN_UNACK": "Cleared, unacknowledged",
    "state_NORMAL": "Closed",
    "state_SHELVED": "Shelved",
    "state_SUPPRESSED": "Suppressed by design",
    "state_OUT_OF_SERVICE": "Out of service",
    "cond_HH": "HH high-high",
    "cond_H": "H high",
    "cond_L": "L low",
    "cond_LL": "LL low-low",
    "cond_FAULT": "Instrument fault",
    "cond_ROC": "Rate of change",
    "cond_FROZEN": "Frozen value",
    "cond_PREDICT": "Predicted crossing",
    "cond_STALE": "No data",
    "cond_VOTE": "k-of-n voting alarm",
    "cond_SOURCE": "Hazard-source warning",
    "cond_GATEWAY_OFFLINE": "Gateway offline",
    "grade_suffix": "",
    "ack": "Acknowledge",
    "ack_comment": "Comment (optional)",
    "ack_failed": "Acknowledge failed",
    "acked_by": "Acknowledged by",
    "detail": "Alarm detail",
    "close": "Close",
    "journal": "Journal",
    "j_at": "Time",
    "j_actor": "Who",
    "j_action": "What",
    "j_state": "State",
    "j_comment": "Comment",
    "act_raise": "raised",
    "act_escalate": "escalated",
    "act_deescalate": "de-escalated",
    "act_reactivate": "re-alarmed",
    "act_clear": "returned to normal",
    "act_ack": "acknowledged",
    "trend": "Trend (last 30 min)",
    "no_data": "No data",
    "no_alarms": "No open alarms",
    "admin_no_alarms": "Administrator accounts do not see alarms",
    "count": "Alarms: {n}",
    "live_ok": "Live",
    "live_connecting": "Connecting…",
    "live_down": "Live link lost; reconnecting",
    "limit": "limit",
    "equipment": "Equipment",
    "raised_at": "Raised",
    "value": "Value",
    "read_only": "read-only",
}

for _level, _name in PRIORITY_NAMES.items():
    ZH[f"priority_{_level}"] = _name
    EN[f"priority_{_level}"] = f"P{_level}"
for _grade, _name in GRADE_NAMES.items():
    ZH[f"grade_{_grade}"] = _name
    EN[f"grade_{_grade}"] = f"Grade {_grade}"

STRINGS: dict[str, dict[str, str]] = {"zh": ZH, "en": EN}


def strings(lang: str) -> dict[str, str]:
    return STRINGS.get(lang, STRINGS[DEFAULT_LANG])


def request_lang(request: web.Request) -> tuple[str, bool]:
    """The language of a page and whether it was chosen now (``?lang=``) and should be remembered."""
    asked = request.query.get("lang")
    if asked in STRINGS:
        return asked, True
    cookie = request.cookies.get(LANG_COOKIE)
    return (cookie if cookie in STRINGS else DEFAULT_LANG), False


def remember_lang(response: web.StreamResponse, lang: str, secure: bool) -> None:
    response.set_cookie(
        LANG_COOKIE, lang, max_age=365 * 86400, path="/", httponly=True, samesite="Lax", secure=secure
    )
