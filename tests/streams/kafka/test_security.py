"""Kafka TLS/SASL settings: validation, masking, and what each client library receives (no broker)."""
from __future__ import annotations

import ssl

import faust
import pytest
from click.testing import CliRunner

from streams.cli import cli
from streams.devtools.broker import LocalBroker
from streams.kafka.admin import BrokerError
from streams.kafka.security import (
    aiokafka_kwargs,
    describe,
    faust_credentials,
    kafka_python_kwargs,
    ssl_context,
)
from streams.settings import Settings, SettingsError
from tests.tlsfiles import CLIENT_KEY_PASSWORD, make_tls_files

SASL = {"LOOKOUT_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512", "LOOKOUT_KAFKA_SASL_USERNAME": "alice",
        "LOOKOUT_KAFKA_SASL_PASSWORD": "pa55-word-xyz"}


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    return make_tls_files(tmp_path_factory.mktemp("tls"))


# ------------------------------------------------------------------ protocol and validation
@pytest.mark.parametrize("env, protocol", [
    ({}, "PLAINTEXT"),
    (SASL, "SASL_PLAINTEXT"),
    ({**SASL, "LOOKOUT_KAFKA_SECURITY_PROTOCOL": "sasl_ssl"}, "SASL_SSL"),
    ({"LOOKOUT_KAFKA_SECURITY_PROTOCOL": "SSL"}, "SSL"),  # system CAs
])
def test_security_protocol_is_the_given_one_or_derived_from_what_is_set(env, protocol):
    assert Settings.from_env(env).kafka_protocol == protocol


def test_a_tls_file_makes_the_protocol_ssl_and_sasl_on_top_makes_it_sasl_ssl(tls):
    assert Settings(kafka_ssl_cafile=tls.ca).kafka_protocol == "SSL"
    s = Settings.from_env({**SASL, "LOOKOUT_KAFKA_SSL_CAFILE": str(tls.ca)})
    assert s.kafka_protocol == "SASL_SSL"


@pytest.mark.parametrize(
    "env, message",
    [
        (
            {"LOOKOUT_KAFKA_SECURITY_PROTOCOL": "TLS"},
            "expected one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL",
        ),
        (
            {"LOOKOUT_KAFKA_SASL_MECHANISM": "GSSAPI", "LOOKOUT_KAFKA_SASL_USERNAME": "a"},
            "expected one of PLAIN",
        ),
        ({"LOOKOUT_KAFKA_SASL_MECHANISM": "PLAIN"}, "needs LOOKOUT_KAFKA_SASL_USERNAME"),
        (
            {"LOOKOUT_KAFKA_SASL_MECHANISM": "PLAIN", "LOOKOUT_KAFKA_SASL_USERNAME": "a"},
            "needs LOOKOUT_KAFKA_SASL_PASSWORD",
        ),
        (
            {"LOOKOUT_KAFKA_SASL_USERNAME": "a", "LOOKOUT_KAFKA_SASL_PASSWORD": "p"},
            "needs LOOKOUT_KAFKA_SASL_MECHANISM",
        ),
        (
            {"LOOKOUT_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"},
            "security protocol SASL_SSL needs LOOKOUT_KAFKA_SASL_MECHANISM",
        ),
        (
            {**SASL, "LOOKOUT_KAFKA_SECURITY_PROTOCOL": "SSL"},
            "the security protocol is SSL: use SASL_PLAINTEXT or SASL_SSL",
        ),
        ({"LOOKOUT_KAFKA_SSL_CAFILE": "/nonexistent/ca.pem"}, "cannot read /nonexistent/ca.pem"),
        ({"LOOKOUT_KAFKA_SSL_KEY_PASSWORD": "x"}, "LOOKOUT_KAFKA_SSL_KEYFILE (--kafka-ssl-keyfile) is not"),
    ],
)
def test_unusable_combinations_are_refused_with_a_message_naming_the_setting(env, message):
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Settings.from_env(env)


def test_a_client_certificate_needs_its_key_and_vice_versa(tls):
    with pytest.raises(SettingsError, match="CERTFILE .* is set but LOOKOUT_KAFKA_SSL_KEYFILE .* is not"):
        Settings(kafka_ssl_certfile=tls.client_cert)
    with pytest.raises(SettingsError, match="KEYFILE .* is set but LOOKOUT_KAFKA_SSL_CERTFILE .* is not"):
        Settings(kafka_ssl_keyfile=tls.client_key)


def test_tls_files_with_a_plaintext_protocol_are_refused(tls):
    with pytest.raises(SettingsError, match="CAFILE .* is set but the security protocol is SASL_PLAINTEXT"):
        Settings.from_env({**SASL, "LOOKOUT_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                           "LOOKOUT_KAFKA_SSL_CAFILE": str(tls.ca)})


def test_password_file_is_read_without_its_newline_and_must_agree_with_the_variable(tmp_path):
    f = tmp_path / "pw"
    f.write_text("from-file\n")
    env = {k: v for k, v in SASL.items() if k != "LOOKOUT_KAFKA_SASL_PASSWORD"}
    s = Settings.from_env({**env, "LOOKOUT_KAFKA_SASL_PASSWORD_FILE": str(f)})
    assert s.kafka_sasl_password == "from-file"
    assert s.replace(app_id="x").kafka_sasl_password == "from-file"  # replace() keeps working
    with pytest.raises(SettingsError, match="both .* are set and they differ") as exc:
        Settings.from_env({**SASL, "LOOKOUT_KAFKA_SASL_PASSWORD_FILE": str(f)})
    assert "from-file" not in str(exc.value) and SASL["LOOKOUT_KAFKA_SASL_PASSWORD"] not in str(exc.value)
    f.write_text("\n")
    with pytest.raises(SettingsError, match="is empty"):
        Settings.from_env({**env, "LOOKOUT_KAFKA_SASL_PASSWORD_FILE": str(f)})


def test_passwords_never_appear_in_repr_str_or_masked_settings(tls):
    s = Settings.from_env({**SASL, "LOOKOUT_KAFKA_SSL_CAFILE": str(tls.ca),
                           "LOOKOUT_KAFKA_SSL_CERTFILE": str(tls.client_cert),
                           "LOOKOUT_KAFKA_SSL_KEYFILE": str(tls.client_key),
                           "LOOKOUT_KAFKA_SSL_KEY_PASSWORD": CLIENT_KEY_PASSWORD})
    for text in (repr(s), str(s), str(s.masked()), describe(s)):
        assert SASL["LOOKOUT_KAFKA_SASL_PASSWORD"] not in text and CLIENT_KEY_PASSWORD not in text
    m = s.masked()
    assert m["kafka_sasl_password"] == "***" and m["kafka_ssl_key_password"] == "***"
    assert m["kafka_sasl_username"] == "alice" and m["kafka_ssl_cafile"] == str(tls.ca)
    assert describe(s) == "SASL_SSL, SCRAM-SHA-512 as user 'alice'"


# ------------------------------------------------------------------ client arguments
def test_plaintext_gives_plain_clients():
    assert kafka_python_kwargs(Settings()) == {"security_protocol": "PLAINTEXT"}
    assert faust_credentials(Settings()) is None
    assert ssl_context(Settings()) is None


def test_sasl_plaintext_reaches_kafka_python_and_faust():
    s = Settings.from_env(SASL)
    assert kafka_python_kwargs(s) == {
        "security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "alice", "sasl_plain_password": "pa55-word-xyz"}
    creds = faust_credentials(s)
    assert isinstance(creds, faust.SASLCredentials)
    assert (
        creds.protocol.value,
        creds.mechanism.value,
        creds.username,
        creds.password,
        creds.ssl_context,
    ) == ("SASL_PLAINTEXT", "SCRAM-SHA-512", "alice", "pa55-word-xyz", None)
    assert "pa55" not in repr(creds)
    # what Faust hands to aiokafka for its consumer, producer and admin client
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    auth = credentials_to_aiokafka_auth(creds)
    assert auth["security_protocol"] == "SASL_PLAINTEXT" and auth["sasl_mechanism"] == "SCRAM-SHA-512"
    assert auth["sasl_plain_username"] == "alice" and auth["sasl_plain_password"] == "pa55-word-xyz"
    # ... and the aiokafka clients the worker makes itself (state topic reader) get the same
    assert aiokafka_kwargs(s) == kafka_python_kwargs(s)


def test_aiokafka_clients_accept_the_arguments(tls):
    from aiokafka import AIOKafkaConsumer

    s = Settings.from_env({**SASL, "LOOKOUT_KAFKA_SSL_CAFILE": str(tls.ca)})
    kw = aiokafka_kwargs(s)
    assert kw["security_protocol"] == "SASL_SSL" and kw["ssl_context"].verify_mode == ssl.CERT_REQUIRED

    async def build():
        return AIOKafkaConsumer(bootstrap_servers="127.0.0.1:1", **kw)  # raises on an unknown argument

    import asyncio

    consumer = asyncio.run(build())
    assert consumer._client._security_protocol == "SASL_SSL"


def test_sasl_ssl_verifies_the_broker_against_the_given_ca(tls):
    s = Settings.from_env({**SASL, "LOOKOUT_KAFKA_SSL_CAFILE": str(tls.ca)})
    kw = kafka_python_kwargs(s)
    ctx = kw["ssl_context"]
    assert kw["security_protocol"] == "SASL_SSL" and kw["sasl_plain_username"] == "alice"
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname and kw["ssl_check_hostname"]
    assert [c["subject"] for c in ctx.get_ca_certs()] == [((("commonName", "lookout test ca"),),)]
    creds = faust_credentials(s)
    assert creds.protocol.value == "SASL_SSL" and creds.ssl_context.get_ca_certs() == ctx.get_ca_certs()


def test_ssl_with_client_certificate_and_no_hostname_check(tls):
    s = Settings(
        kafka_ssl_cafile=tls.ca,
        kafka_ssl_certfile=tls.client_cert,
        kafka_ssl_keyfile=tls.client_key,
        kafka_ssl_key_password=CLIENT_KEY_PASSWORD,
        kafka_ssl_check_hostname=False,
    )
    kw = kafka_python_kwargs(s)
    assert kw["security_protocol"] == "SSL" and "sasl_mechanism" not in kw
    assert kw["ssl_context"].check_hostname is False and kw["ssl_check_hostname"] is False
    creds = faust_credentials(s)
    assert isinstance(creds, faust.SSLCredentials) and creds.protocol.value == "SSL"
    assert creds.context.check_hostname is False


def test_a_wrong_key_password_or_a_file_that_is_not_pem_is_a_settings_error(tls, tmp_path):
    s = Settings(
        kafka_ssl_cafile=tls.ca,
        kafka_ssl_certfile=tls.client_cert,
        kafka_ssl_keyfile=tls.client_key,
        kafka_ssl_key_password="wrong",
    )
    with pytest.raises(SettingsError, match="cannot load the client certificate") as exc:
        kafka_python_kwargs(s)
    assert "wrong" not in str(exc.value).replace("wrong key password", "")
    no_password = s.replace(kafka_ssl_key_password=None)  # must fail, not prompt on the terminal
    with pytest.raises(SettingsError, match="encrypted key without the right LOOKOUT_KAFKA_SSL_KEY_PASSWORD"):
        kafka_python_kwargs(no_password)
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(SettingsError, match="is not a usable CA bundle"):
        ssl_context(Settings(kafka_ssl_cafile=junk))


def test_env_reading_coerces_the_hostname_flag():
    assert Settings.from_env({"LOOKOUT_KAFKA_SECURITY_PROTOCOL": "SSL",
                              "LOOKOUT_KAFKA_SSL_CHECK_HOSTNAME": "false"}).kafka_ssl_check_hostname is False
    assert Settings.from_env({}).kafka_ssl_check_hostname is True


# ------------------------------------------------------------------ CLI
@pytest.mark.parametrize("command", [["worker"], ["topics", "create"], ["simulate"], ["replay"], ["tune"],
                                     ["demo"], ["broker", "start"], ["alerts", "tail"]])
def test_every_kafka_command_documents_the_security_options_and_never_shows_a_password(command, monkeypatch):
    for k, v in SASL.items():
        monkeypatch.setenv(k, v)
    res = CliRunner().invoke(cli, [*command, "--help"])
    assert res.exit_code == 0, res.output
    for opt in ("--kafka-security-protocol", "--kafka-sasl-mechanism", "--kafka-sasl-username",
                "--kafka-sasl-password-file", "--kafka-ssl-cafile", "--kafka-ssl-no-check-hostname"):
        assert opt in res.output, (command, opt)
    assert "--kafka-sasl-password " not in res.output  # no option that would put it on the command line
    assert SASL["LOOKOUT_KAFKA_SASL_PASSWORD"] not in res.output


def test_worker_refuses_bad_security_settings_in_one_line_before_starting(tls, monkeypatch):
    monkeypatch.delenv("LOOKOUT_KAFKA_SSL_KEYFILE", raising=False)
    res = CliRunner().invoke(cli, ["worker", "--kafka-ssl-certfile", str(tls.client_cert)])
    assert res.exit_code == 1
    assert res.output.strip().splitlines() == [
        "Error: LOOKOUT_KAFKA_SSL_CERTFILE (--kafka-ssl-certfile) is set but LOOKOUT_KAFKA_SSL_KEYFILE "
        "(--kafka-ssl-keyfile) is not: a client certificate and its private key go together"]


# ------------------------------------------------------------------ local broker
def test_local_broker_with_sasl_settings_serves_a_sasl_listener(tmp_path):
    s = Settings.from_env({**SASL, "LOOKOUT_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256"},
                          broker_port=29311, broker_controller_port=29312, broker_data_dir=tmp_path / "b")
    props = LocalBroker(s).render_properties()
    assert "listeners=SASL_PLAINTEXT://127.0.0.1:29311,CONTROLLER://127.0.0.1:29312" in props
    assert "listener.security.protocol.map=SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT" in props
    assert "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512" in props
    assert "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-256" in props
    b = LocalBroker(s)
    b.data_dir.mkdir(parents=True)
    b._write_config()
    assert b.properties_file.stat().st_mode & 0o077 == 0  # it holds the password: owner only


def test_local_broker_with_tls_settings_serves_tls_and_requires_client_certificates(tmp_path, tls):
    s = Settings(
        kafka_ssl_cafile=tls.ca,
        kafka_ssl_certfile=tls.client_cert,
        kafka_ssl_keyfile=tls.client_key,
        kafka_ssl_key_password=CLIENT_KEY_PASSWORD,
        broker_ssl_certfile=tls.server_cert,
        broker_ssl_keyfile=tls.server_key,
        broker_port=29321,
        broker_controller_port=29322,
        broker_data_dir=tmp_path / "b",
    )
    b = LocalBroker(s)
    props = b.render_properties()
    assert "listeners=SSL://127.0.0.1:29321,CONTROLLER://127.0.0.1:29322" in props
    assert f"ssl.keystore.location={b.keystore_file}" in props and "ssl.keystore.type=PEM" in props
    assert f"ssl.truststore.location={tls.ca}" in props and "ssl.client.auth=required" in props
    b.data_dir.mkdir(parents=True)
    b._write_config()
    keystore = b.keystore_file.read_text()
    assert keystore.startswith("-----BEGIN PRIVATE KEY-----") and keystore.count("BEGIN CERTIFICATE") == 1
    assert b.keystore_file.stat().st_mode & 0o077 == 0


def test_local_broker_refuses_tls_without_a_server_certificate_and_credentials_it_cannot_register(
    tmp_path, tls
):
    tls_broker = LocalBroker(Settings(kafka_ssl_cafile=tls.ca, broker_data_dir=tmp_path / "b"))
    assert not tls_broker.status().running  # status/stop work whatever the client settings say
    with pytest.raises(BrokerError, match="serving SSL needs a server certificate and key: set "
                                          "LOOKOUT_BROKER_SSL_CERTFILE and LOOKOUT_BROKER_SSL_KEYFILE"):
        tls_broker.start()
    s = Settings.from_env({**SASL, "LOOKOUT_KAFKA_SASL_PASSWORD": 'a"b'}, broker_data_dir=tmp_path / "b")
    with pytest.raises(BrokerError, match="cannot register a SASL user name or password") as exc:
        LocalBroker(s).start()
    assert 'a"b' not in str(exc.value)
    assert not (tmp_path / "b").exists()  # refused before touching anything


def test_local_broker_says_to_reformat_when_its_storage_knows_other_sasl_credentials(tmp_path):
    def broker(password):
        return LocalBroker(Settings.from_env({**SASL, "LOOKOUT_KAFKA_SASL_PASSWORD": password},
                                             broker_data_dir=tmp_path / "b"))

    b = broker("first-pw")
    (b.log_dirs).mkdir(parents=True)
    (b.log_dirs / "meta.properties").write_text("formatted\n")
    b.credentials_file.write_text(b._credentials_fingerprint() + "\n")
    b._format_storage("java", tmp_path)  # same user and password: nothing to do
    with pytest.raises(BrokerError, match="formatted without this SASL user/password .* --fresh") as exc:
        broker("second-pw")._format_storage("java", tmp_path)
    assert "second-pw" not in str(exc.value) and "first-pw" not in b.credentials_file.read_text()


def test_a_rejected_connections_leftover_futures_never_print_after_the_error(monkeypatch, capsys, caplog):
    """The broker's TLS alert reaches aiokafka's reader task and the stream's closed future; the
    one the probe does not await used to print "Future exception was never retrieved" and a
    traceback under the one-line error (a CI failure). Left-overs of the probe stay quiet."""
    import asyncio
    import logging

    from streams.kafka import security

    async def probe_leaving_a_failed_future(bootstrap, sec, timeout):
        fut = asyncio.get_running_loop().create_future()
        fut.set_exception(ssl.SSLError(1, "[SSL: SSLV3_ALERT_BAD_CERTIFICATE] sslv3 alert bad certificate"))
        del fut  # nobody retrieves it: the stray future of a rejected handshake
        return "sslv3 alert bad certificate"

    monkeypatch.setattr(security, "_probe", probe_leaving_a_failed_future)
    with caplog.at_level(logging.WARNING):
        reason = security.rejection("127.0.0.1:1", {"security_protocol": "SSL"}, 1.0)
    assert reason == "sslv3 alert bad certificate"
    assert "never retrieved" not in caplog.text + capsys.readouterr().err
