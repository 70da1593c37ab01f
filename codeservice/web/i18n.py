"""The web pages' strings: one catalogue, Simplified Chinese first, English second.

The language is the ``lang`` cookie's (set by the toggle link) or else the
best of ``Accept-Language`` between the two; Chinese when neither says.
Strings are ``str.format`` templates: ``t("countdown", seconds=12)``.
"""

from __future__ import annotations

from flask import request

LANGUAGES = ("zh", "en")
DEFAULT_LANGUAGE = "zh"
LANG_COOKIE = "lang"
# The value of <html lang="...">: the script subtag tells screen readers and
# font fallback that the Chinese is Simplified.
HTML_LANG = {"zh": "zh-Hans", "en": "en"}


MESSAGES: dict[str, dict[str, str]] = {
    "zh": {
        "app_name": "居民服务码",
        "switch_language": "English",
        "switch_language_label": "Switch to English",
        # register
        "register_title": "注册",
        "register_intro": "注册后即可使用居民服务码。",
        "field_name": "姓名",
        "field_id_type": "证件类型",
        "field_id_number": "证件号码",
        "field_phone": "手机号码",
        "field_password": "密码",
        "password_hint": "至少 {min} 个字符，不能包含手机号码或证件号码。",
        "id_type_resident_id": "居民身份证",
        "id_type_passport": "护照",
        "id_type_hk_macao_permit": "港澳居民来往内地通行证",
        "id_type_taiwan_permit": "台湾居民来往大陆通行证",
        "register_submit": "注册",
        "have_account": "已有账号？",
        "go_login": "登录",
        # login
        "login_title": "登录",
        "login_submit": "登录",
        "no_account": "还没有账号？",
        "go_register": "注册",
        "logged_out": "您已退出登录。",
        # errors of the forms, by the service's error code
        "error_summary": "请修改以下内容后重新提交：",
        "err_invalid_name": "请填写姓名（不超过 {max_name} 个字符，不含特殊符号）。",
        "err_invalid_id_type": "请选择证件类型。",
        "err_invalid_id_number": "证件号码无效，请核对后重新输入。",
        "err_invalid_phone": "手机号码无效，请输入 11 位中国大陆手机号码。",
        "err_weak_password": (
            "密码太简单：至少 {min} 个字符，不能是重复字符或连续按键，"
            "也不能包含手机号码或证件号码。"
        ),
        "err_identity_taken": "该证件已注册，请直接登录。",
        "err_phone_taken": "该手机号码已注册，请直接登录。",
        "err_bad_credentials": "手机号码或密码错误。",
        "err_too_many_attempts": "尝试次数过多，请 {minutes} 分钟后再试。",
        "err_missing_field": "请填写所有必填项。",
        "err_invalid_field": "{field}填写有误，请核对。",
        "err_generic": "无法完成请求，请稍后再试。",
        # CSRF and other error pages
        "csrf_title": "表单已失效",
        "csrf_message": "该表单已过期或无效（安全校验未通过）。请返回并重新提交。",
        "back": "返回",
        # code page
        "code_title": "我的服务码",
        "code_hint": "请向工作人员或扫码设备出示此码。",
        "qr_label": "居民服务码二维码",
        "countdown": "{seconds} 秒后自动更新",
        "countdown_static": "有效期 {seconds} 秒",
        "expires_in": "二维码 {seconds} 秒后过期",
        "refreshing": "正在更新…",
        "refresh": "刷新二维码",
        "updated": "已更新",
        "offline": "网络已断开。当前二维码仍可使用 {seconds} 秒。",
        "offline_expired": "离线 — 二维码已过期",
        "offline_expired_help": "请连接网络后点击“刷新二维码”。",
        "expired": "二维码已过期",
        "retrying": "暂时无法更新二维码，正在重试…",
        "session_expired": "登录已过期，请重新登录。",
        "login_again": "重新登录",
        "revoked": "您的服务码已停用，请联系服务中心。",
        # the device code (contract section 9), made on this phone
        "clock_label": "当前时间",
        "device_renews_in": "{seconds} 秒后更新",
        "device_offline": "离线，二维码有效期至 {until}",
        "device_expired": "凭证已过期，请联网一次",
        "device_none": "此手机尚未保存离线码，请联网打开一次",
        "device_unsupported": "此浏览器无法保存设备密钥。",
        "shell_reload": "重新连接",
        "category_senior": "长者",
        "category_student": "学生",
        "category_disabled": "残障人士",
        "category_child": "儿童",
        "nav_code": "服务码",
        "nav_history": "使用记录",
        "nav_devices": "我的设备",
        "logout": "退出登录",
        # history
        "history_title": "使用记录",
        "history_placeholder": "您的服务码使用记录将显示在这里。",
        "history_intro": "最近的记录在前。时间为北京时间（UTC+8）。",
        "history_more": "更早的记录",
        "history_newest": "回到最新记录",
        "history_end": "没有更早的记录了。",
        "history_status_ok": "通过",
        "history_status_refused": "未通过",
        "history_when": "时间",
        "history_where": "地点",
        "history_offline": "离线核验，稍后上传",
        "history_form": "出示方式",
        "form_online": "在线码",
        "form_device": "设备码（离线生成）",
        "form_paper": "纸质码",
        # devices
        "devices_title": "我的设备",
        "paper_card_title": "纸质码",
        "paper_card_live": "您有一张有效的纸质码（{until}）。",
        "paper_card_help": "如已不需要或遗失，请携带身份证件到社区事务受理服务中心办理挂失；各扫码点同步后该卡即失效。",
        "devices_intro": "可以离线出示服务码的手机。撤销后，该手机的离线码不再有效。",
        "devices_loading": "正在加载…",
        "devices_noscript": "此页面需要启用 JavaScript。",
        "devices_enrolled": "启用于 {date}",
        "devices_active": "有效",
        "devices_withdrawn": "已撤销",
        "devices_this_phone": "本机",
        "devices_withdraw": "撤销",
        "devices_withdrawn_done": "已撤销该设备。",
        "devices_empty": "还没有设备。在手机上打开服务码页面即可启用。",
        "devices_error": "无法完成请求，请稍后再试。",
        "history_bad_link_title": "链接无效",
        "history_bad_link": "该页面链接无效或已损坏。请从最新记录重新查看。",
        # scenes
        "scene_clinic": "医疗机构",
        "scene_transit": "公共交通",
        "scene_venue": "文化场馆",
        "scene_unknown": "未知场景",
        # decisions, by code (contract sections 2 and 3)
        "decision_accepted": "已通过",
        "decision_accepted_transit_in": "进站",
        "decision_accepted_transit_out": "出站",
        "decision_accepted_transit_out_fare": "出站，车费 {fare}",
        "decision_accepted_clinic": "已签到",
        "decision_accepted_venue": "已入场",
        "decision_malformed": "无法识别的码",
        "decision_wrong_type": "不是居民服务码",
        "decision_alg_not_allowed": "签名算法不被接受",
        "decision_unknown_key": "签名密钥未知",
        "decision_bad_signature": "签名无效",
        "decision_issuer_mismatch": "不是本服务签发的码",
        "decision_expired": "码已过期",
        "decision_not_yet_valid": "码尚未生效（扫码设备时间可能有误）",
        "decision_scene_not_allowed": "此码不能用于该场景",
        "decision_attendant_required": "纸质码须由工作人员核验证件后使用",
        "decision_revoked": "服务码已停用",
        "decision_replayed": "码已使用过（重复扫码）",
        "decision_unknown_scene": "未知的使用场景",
        "decision_bad_context": "扫码设备设置有误",
        "decision_passback": "已有未结束的行程（上次未出站）",
        "decision_no_entry": "没有进站记录",
        "decision_no_appointment": "今日在该科室没有预约",
        "decision_already_checked_in": "今日已在该科室签到",
        "decision_already_entered": "今日已入场",
        "decision_capacity_full": "今日已满员",
        "decision_no_reservation": "没有预约",
        "decision_other": "未通过（{code}）",
    },
    "en": {
        "app_name": "Resident Service Code",
        "switch_language": "中文",
        "switch_language_label": "切换到中文",
        "register_title": "Register",
        "register_intro": "Register to get your resident service code.",
        "field_name": "Name",
        "field_id_type": "ID type",
        "field_id_number": "ID number",
        "field_phone": "Mobile phone",
        "field_password": "Password",
        "password_hint": "At least {min} characters, not containing your phone or ID number.",
        "id_type_resident_id": "Resident ID card",
        "id_type_passport": "Passport",
        "id_type_hk_macao_permit": "Hong Kong/Macao permit",
        "id_type_taiwan_permit": "Taiwan permit",
        "register_submit": "Register",
        "have_account": "Already registered?",
        "go_login": "Log in",
        "login_title": "Log in",
        "login_submit": "Log in",
        "no_account": "No account yet?",
        "go_register": "Register",
        "logged_out": "You have logged out.",
        "error_summary": "Please correct the following and submit again:",
        "err_invalid_name": "Enter your name (at most {max_name} characters, no special symbols).",
        "err_invalid_id_type": "Choose an ID type.",
        "err_invalid_id_number": "This ID number is not valid. Please check it and try again.",
        "err_invalid_phone": "This phone number is not valid. Enter an 11-digit mainland China mobile number.",
        "err_weak_password": (
            "This password is too weak: use at least {min} characters, not one repeated character or a run of keys, "
            "and not your phone or ID number."
        ),
        "err_identity_taken": "This ID document is already registered. Please log in.",
        "err_phone_taken": "This phone number is already registered. Please log in.",
        "err_bad_credentials": "The phone number or the password is wrong.",
        "err_too_many_attempts": "Too many attempts. Try again in {minutes} min.",
        "err_missing_field": "Please fill in every field.",
        "err_invalid_field": "Please check the field “{field}”.",
        "err_generic": "The request could not be completed. Please try again later.",
        "csrf_title": "Form expired",
        "csrf_message": (
            "This form has expired or is not valid (the security check failed). Please go back and submit it again."
        ),
        "back": "Back",
        "code_title": "My service code",
        "code_hint": "Show this code to the staff or the scanner.",
        "qr_label": "Resident service code QR",
        "countdown": "Renews in {seconds} s",
        "countdown_static": "Valid for {seconds} s",
        "expires_in": "Code expires in {seconds} s",
        "refreshing": "Updating…",
        "refresh": "Refresh code",
        "updated": "Updated",
        "offline": "You are offline. This code stays valid for {seconds} s.",
        "offline_expired": "Offline — code expired",
        "offline_expired_help": "Connect to the internet, then tap “Refresh code”.",
        "expired": "Code expired",
        "retrying": "Cannot update the code right now; retrying…",
        "session_expired": "Your session has expired. Please log in again.",
        "login_again": "Log in again",
        "revoked": "Your service code has been withdrawn. Please contact the service centre.",
        "clock_label": "Current time",
        "device_renews_in": "New code in {seconds} s",
        "device_offline": "Offline, code valid until {until}",
        "device_expired": "Credential expired, connect once",
        "device_none": "No offline code on this phone yet: connect once",
        "device_unsupported": "This browser cannot hold a device key.",
        "shell_reload": "Reconnect",
        "category_senior": "Senior",
        "category_student": "Student",
        "category_disabled": "Disabled",
        "category_child": "Child",
        "nav_code": "Code",
        "nav_history": "History",
        "nav_devices": "Devices",
        "logout": "Log out",
        "history_title": "Usage history",
        "history_placeholder": "Your usage history will appear here.",
        "history_intro": "Newest first. Times are China Standard Time (UTC+8).",
        "history_more": "Older records",
        "history_newest": "Back to the newest",
        "history_end": "There are no older records.",
        "history_status_ok": "Accepted",
        "history_status_refused": "Refused",
        "history_when": "When",
        "history_where": "Where",
        "history_offline": "Checked offline, uploaded later",
        "history_form": "Presented as",
        "form_online": "Online code",
        "form_device": "Device code (made offline)",
        "form_paper": "Paper code",
        "devices_title": "My devices",
        "paper_card_title": "Paper card",
        "paper_card_live": "You have a live paper card ({until}).",
        "paper_card_help": "If you no longer need it or have lost it, bring your ID card to a community service "
        "centre to have it revoked; it stops working as soon as scanners have synced.",
        "devices_intro": "Phones that can show your code offline. A withdrawn phone's offline codes stop working.",
        "devices_loading": "Loading…",
        "devices_noscript": "This page needs JavaScript.",
        "devices_enrolled": "Enrolled {date}",
        "devices_active": "Active",
        "devices_withdrawn": "Withdrawn",
        "devices_this_phone": "This phone",
        "devices_withdraw": "Withdraw",
        "devices_withdrawn_done": "The device was withdrawn.",
        "devices_empty": "No devices yet. Open the code page on your phone to add it.",
        "devices_error": "The request could not be completed. Please try again later.",
        "history_bad_link_title": "Invalid link",
        "history_bad_link": "This link is invalid or damaged. Please start again from the newest records.",
        "scene_clinic": "Clinic",
        "scene_transit": "Transit",
        "scene_venue": "Venue",
        "scene_unknown": "Unknown use",
        "decision_accepted": "Accepted",
        "decision_accepted_transit_in": "Entered",
        "decision_accepted_transit_out": "Exited",
        "decision_accepted_transit_out_fare": "Exited, fare {fare}",
        "decision_accepted_clinic": "Checked in",
        "decision_accepted_venue": "Entered",
        "decision_malformed": "Not a readable code",
        "decision_wrong_type": "Not a resident service code",
        "decision_alg_not_allowed": "Signature algorithm not allowed",
        "decision_unknown_key": "Signed by an unknown key",
        "decision_bad_signature": "Invalid signature",
        "decision_issuer_mismatch": "Not issued by this service",
        "decision_expired": "Code expired",
        "decision_not_yet_valid": "Code not yet valid (the scanner's clock may be wrong)",
        "decision_scene_not_allowed": "This code cannot be used here",
        "decision_attendant_required": "A paper code is accepted only where staff check the ID card",
        "decision_revoked": "Service code withdrawn",
        "decision_replayed": "Code already used (scanned twice)",
        "decision_unknown_scene": "Unknown use",
        "decision_bad_context": "Scanner set up wrongly",
        "decision_passback": "A trip was still open (no exit recorded)",
        "decision_no_entry": "No entry recorded",
        "decision_no_appointment": "No appointment today in this department",
        "decision_already_checked_in": "Already checked in here today",
        "decision_already_entered": "Already entered today",
        "decision_capacity_full": "Full for today",
        "decision_no_reservation": "No reservation",
        "decision_other": "Refused ({code})",
    },
}


def negotiate(cookie: str | None, accept_languages: object) -> str:
    """The page language: a valid cookie wins, then Accept-Language, then Chinese."""
    if cookie in LANGUAGES:
        return cookie
    best = getattr(accept_languages, "best_match", None)
    if best is not None:
        match: str | None = best(LANGUAGES)
        if match is not None and match in LANGUAGES:
            return match
    return DEFAULT_LANGUAGE


def current_language() -> str:
    return negotiate(request.cookies.get(LANG_COOKIE), request.accept_languages)


def translate(key: str, lang: str | None = None, **values: object) -> str:
    """The string ``key`` in ``lang`` (the request's by default), formatted with ``values``."""
    catalogue = MESSAGES[lang or current_language()]
    text = catalogue.get(key)
    if text is None:
        text = MESSAGES[DEFAULT_LANGUAGE].get(key, key)
    return text.format(**values) if values else text


def has(key: str) -> bool:
    return key in MESSAGES[DEFAULT_LANGUAGE]
