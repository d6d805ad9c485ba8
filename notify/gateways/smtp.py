"""E-mail through an SMTP relay (smtplib): plain text with an HTML alternative, and attachments.

Why the session is driven step by step (EHLO, STARTTLS, AUTH, MAIL, RCPT, DATA) rather than
with ``send_message``: the outbox must know whether a failure happened *before* the message
was handed over (retry is safe) or *during* DATA (the relay may have queued it: unknown).
SMTP's own reply codes say the rest: 5xx is permanent, 4xx is "try later".

The Message-ID is made from the notice's key, so a message the relay did queue twice can at
least be recognised as one; SMTP has no idempotency, so the gateway does not claim it.
"""

from __future__ import annotations

import smtplib
import ssl
import uuid
from email import policy
from email.message import EmailMessage
from email.utils import formataddr, formatdate

from notify.config import SmtpConfig
from notify.message import Channel, Delivery, Message, SendResult

SMTP_POLICY = policy.SMTP
"""CRLF line ends: smtplib passes bytes through as they are, and a server reads lines up to CRLF."""


def _reply(code: int, text: bytes | str) -> str:
    words = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    return f"{code} {words}".strip()


class SmtpGateway:
    channel = Channel.EMAIL
    idempotent = False

    def __init__(self, config: SmtpConfig) -> None:
        self.config = config
        self.domain = config.sender.rsplit("@", 1)[1]

    def tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.config.ca_file) if self.config.ca_file else None)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context

    def build(self, message: Message) -> EmailMessage:
        mail = EmailMessage()
        mail["From"] = formataddr((self.config.sender_name, self.config.sender))
        mail["To"] = message.recipient
        mail["Subject"] = message.subject
        mail["Date"] = formatdate(localtime=True)
        local = message.key if message.key else uuid.uuid4().hex
        mail["Message-ID"] = f"<{local}@{self.domain}>"
        mail["Auto-Submitted"] = "auto-generated"  # RFC 3834: no out-of-office replies to us
        mail.set_content(message.text)
        if message.html:
            mail.add_alternative(message.html, subtype="html")
        for part in message.attachments:  # the body becomes multipart/mixed: text (+ HTML), then the files
            maintype, subtype = part.media_type.split("/", 1)
            mail.add_attachment(part.content, maintype=maintype, subtype=subtype, filename=part.filename)
        return mail

    def connect(self) -> smtplib.SMTP:
        """An open, greeted, encrypted and logged-in session (used by ``--check`` too)."""
        c = self.config
        smtp: smtplib.SMTP
        if c.security == "tls":
            smtp = smtplib.SMTP_SSL(c.host, c.port, timeout=c.timeout_s, context=self.tls_context())
        else:
            smtp = smtplib.SMTP(c.host, c.port, timeout=c.timeout_s)
        try:
            smtp.ehlo()
            if c.security == "starttls":
                smtp.starttls(context=self.tls_context())
                smtp.ehlo()
            if c.username is not None and c.password is not None:
                smtp.login(c.username, c.password.get_secret_value())
        except BaseException:
            smtp.close()
            raise
        return smtp

    def send(self, message: Message) -> SendResult:
        if message.channel is not Channel.EMAIL or "@" not in message.recipient:
            return SendResult.failed("the SMTP gateway sends e-mail to an address only")
        mail = self.build(message)
        try:
            smtp = self.connect()
        except smtplib.SMTPAuthenticationError as exc:
            return SendResult.retry(f"the mail server refused the login ({_reply(exc.smtp_code, exc.smtp_error)})")
        except smtplib.SMTPNotSupportedError:
            return SendResult.retry("the mail server does not offer STARTTLS")
        except (OSError, smtplib.SMTPException) as exc:
            return SendResult.retry(f"cannot open a session with the mail server ({type(exc).__name__}: {exc})")
        try:
            return self._transact(smtp, message, mail)
        finally:
            try:
                smtp.quit()
            except (OSError, smtplib.SMTPException):
                smtp.close()

    def _transact(self, smtp: smtplib.SMTP, message: Message, mail: EmailMessage) -> SendResult:
        try:
            code, text = smtp.mail(self.config.sender)
            if code != 250:
                return self._refused("sender", code, text)
            code, text = smtp.rcpt(message.recipient)
            if code not in (250, 251):
                return self._refused("recipient", code, text)
        except (OSError, smtplib.SMTPException) as exc:
            return SendResult.retry(f"the mail session broke before the message was sent ({type(exc).__name__})")
        try:
            code, text = smtp.data(mail.as_bytes(policy=SMTP_POLICY))
        except smtplib.SMTPDataError as exc:
            return self._refused("message", exc.smtp_code, exc.smtp_error)
        except OSError as exc:  # a timeout or a dropped connection: the relay may have the message
            return SendResult.unknown(f"no answer from the mail server after the message ({type(exc).__name__})")
        if code != 250:
            return self._refused("message", code, text)
        return SendResult.accepted(str(mail["Message-ID"]), reason=_reply(code, text))

    @staticmethod
    def _refused(what: str, code: int, text: bytes | str) -> SendResult:
        why = f"the mail server refused the {what} ({_reply(code, text)})"
        return SendResult.failed(why) if 500 <= code < 600 else SendResult.retry(why)

    def status(self, gateway_id: str) -> Delivery | None:
        return None  # SMTP says nothing after the relay took the message

    def close(self) -> None:
        pass
