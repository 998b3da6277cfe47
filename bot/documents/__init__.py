"""The centre's paper forms (信息印章采集表, 单位授权书及诚信承诺书, CA数字证书密码重置申请表):
their layouts declared as data (``layouts``) and drawn as printable A4 PDFs and PNG pages
(``render``). A library: no bot, database or chat imports (a test keeps it so)."""
