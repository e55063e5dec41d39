"""A real single-node Kafka broker (KRaft mode) managed by the project.

``lookout broker start`` and the test fixtures use this instead of Docker. The
Kafka jars are fetched once with Maven into ``settings.kafka_home`` and the
broker runs as a detached ``java kafka.Kafka`` process whose configuration,
data, logs and pid file all live in ``settings.broker_data_dir``::

    <data dir>/
        .lookout-broker         marker: this directory belongs to a LocalBroker
        server.properties       rendered from Settings on every start
        log4j2.properties       broker logs INFO to logs/server.log
        broker.pid              JSON {pid, port, ...} while the broker runs
        kraft/                  Kafka's log.dirs (formatted once)
        logs/server.log         the broker log; logs/stdout.log the JVM console

A ``LocalBroker`` only ever signals the process named in *its own* pid file,
and only if that process really is ``kafka.Kafka`` started with *its own*
``server.properties``; a broker it did not start is never touched.

>>> from streams.settings import Settings
>>> b = LocalBroker(Settings(broker_port=29092, broker_controller_port=29093))
>>> b.bootstrap
'127.0.0.1:29092'
>>> "listeners=PLAINTEXT://127.0.0.1:29092,CONTROLLER://127.0.0.1:29093" in b.render_properties()
True
"""
from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator

from streams.kafka.admin import BrokerError, answers, can_connect, clip
from streams.kafka.security import kafka_python_kwargs
from streams.settings import Settings

__all__ = [
    "BrokerStatus",
    "LocalBroker",
]

LOG4J_VERSION = "2.24.3"
DEPENDENCY_PLUGIN_VERSION = "3.8.1"
HOST = "127.0.0.1"
NODE_ID = 1
MARKER = ".lookout-broker"
#: listener security protocols a LocalBroker can serve (TLS ones need broker_ssl_certfile/keyfile)
LOCAL_PROTOCOLS = ("PLAINTEXT", "SASL_PLAINTEXT", "SSL", "SASL_SSL")
#: SASL mechanisms enabled on a SASL listener (the client picks one; SCRAM users exist for both SCRAM kinds)
LOCAL_SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
#: characters the JAAS config and ``kafka-storage format --add-scram`` cannot carry unquoted
UNSAFE_CREDENTIAL_CHARS = frozenset('"\\,[]=; \n\r\t')

#: JVM options for the broker: a modest heap, the machine runs other things.
JVM_OPTS = (
    "-Xms256m",
    "-Xmx512m",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-Djava.awt.headless=true",
)


@dataclass(frozen=True)
class BrokerStatus:
    running: bool
    pid: int | None
    port: int
    controller_port: int
    data_dir: Path
    version: str
    log_file: Path
    note: str = ""

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"

    def as_dict(self) -> dict:
        d = asdict(self)
        d["data_dir"] = str(self.data_dir)
        d["log_file"] = str(self.log_file)
        d["bootstrap"] = self.bootstrap
        return d


def _noop(_msg: str) -> None:
    pass


class LocalBroker:
    """One KRaft broker+controller bound to 127.0.0.1, described by ``settings``.

    Uses ``kafka_version``, ``kafka_home``, ``broker_port``,
    ``broker_controller_port`` and ``broker_data_dir``. ``progress`` receives
    human-readable progress lines (the CLI passes ``click.echo(err=True)``).

    With the Kafka security settings describing SASL_PLAINTEXT (``kafka_sasl_mechanism``,
    ``kafka_sasl_username``, ``kafka_sasl_password``) the client listener requires SASL
    instead: PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 are enabled and that one user is
    created (SCRAM credentials are written when the storage is formatted, so other
    credentials later need ``fresh=True``). With SSL/SASL_SSL the listener serves TLS with
    ``broker_ssl_certfile``/``broker_ssl_keyfile`` (PEM keystore) and, when a client
    certificate is configured (``kafka_ssl_certfile``), requires one signed by
    ``kafka_ssl_cafile``. The broker's own readiness checks use the same settings, as
    every Lookout client does.
    """

    def __init__(self, settings: Settings, *, progress: Callable[[str], None] | None = None) -> None:
        self.settings = settings
        self.version = settings.kafka_version
        self.port = int(settings.broker_port)
        self.controller_port = int(settings.broker_controller_port)
        if self.port == self.controller_port:
            raise BrokerError(f"broker port and controller port must differ (both are {self.port})")
        self.data_dir = Path(settings.broker_data_dir).expanduser().resolve()
        self.kafka_dir = Path(settings.kafka_home).expanduser().resolve() / f"kafka-{self.version}"
        self.libs_dir = self.kafka_dir / "libs"
        self.progress = progress or _noop
        self.protocol = settings.kafka_protocol

    def check_security(self) -> None:
        """Can this broker serve the security settings? (checked on start; stop/status never need it)"""
        s = self.settings
        if self.tls:
            missing = [n for n in ("broker_ssl_certfile", "broker_ssl_keyfile") if not getattr(s, n)]
            if missing:
                raise BrokerError(
                    f"a local broker serving {self.protocol} needs a server certificate and key: set "
                    + " and ".join(f"LOOKOUT_{n.upper()}" for n in missing)
                    + " (or --ssl-certfile/--ssl-keyfile)"
                )
            for n in ("broker_ssl_certfile", "broker_ssl_keyfile"):
                if not os.access(getattr(s, n), os.R_OK):
                    raise BrokerError(f"LOOKOUT_{n.upper()}: cannot read {getattr(s, n)}")
        if self.sasl:
            bad = sorted({c for v in (s.kafka_sasl_username, s.kafka_sasl_password)
                          for c in v if c in UNSAFE_CREDENTIAL_CHARS})
            if bad:
                raise BrokerError("the local broker cannot register a SASL user name or password containing "
                                  f"any of {' '.join(repr(c) for c in bad)}")

    @property
    def sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    @property
    def tls(self) -> bool:
        return self.protocol.endswith("SSL")

    @property
    def keystore_file(self) -> Path:
        """The server key and certificate chain in one PEM file (Kafka's PEM keystore), mode 0600."""
        return self.data_dir / "server-keystore.pem"

    def client_kwargs(self) -> dict:
        """kafka-python security arguments a client of this broker needs (from the same settings)."""
        return kafka_python_kwargs(self.settings)

    # ---------------------------------------------------------------- paths
    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def properties_file(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def credentials_file(self) -> Path:
        """Fingerprint of the SASL user registered when the storage was formatted (no secret in it)."""
        return self.data_dir / "sasl-user.sha256"

    @property
    def log4j_file(self) -> Path:
        return self.data_dir / "log4j2.properties"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "broker.pid"

    @property
    def log_dirs(self) -> Path:
        return self.data_dir / "kraft"

    @property
    def logs_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def log_file(self) -> Path:
        return self.logs_dir / "server.log"

    @property
    def stdout_file(self) -> Path:
        return self.logs_dir / "stdout.log"

    # ------------------------------------------------------------- rendering
    def render_properties(self) -> str:
        """The broker's ``server.properties`` (single node, loopback only; plaintext or SASL).

        With SASL it holds the user's password (JAAS config): the file is written mode 0600.
        """
        p = self.protocol
        props = {
            "process.roles": "broker,controller",
            "node.id": NODE_ID,
            "controller.quorum.voters": f"{NODE_ID}@{HOST}:{self.controller_port}",
            "listeners": f"{p}://{HOST}:{self.port},CONTROLLER://{HOST}:{self.controller_port}",
            "advertised.listeners": f"{p}://{HOST}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": p,
            "listener.security.protocol.map": f"{p}:{p},CONTROLLER:PLAINTEXT",
            "log.dirs": self.log_dirs,
            "num.partitions": 1,
            "auto.create.topics.enable": "true",
            "offsets.topic.replication.factor": 1,
            "offsets.topic.num.partitions": 1,
            "transaction.state.log.replication.factor": 1,
            "transaction.state.log.min.isr": 1,
            "share.coordinator.state.topic.replication.factor": 1,
            "share.coordinator.state.topic.min.isr": 1,
            "group.initial.rebalance.delay.ms": 0,
            # after a restart the controller waits for the old broker session to
            # expire before the broker is unfenced: keep that short (default 9s)
            "broker.heartbeat.interval.ms": 500,
            "broker.session.timeout.ms": 4000,
        }
        if self.sasl:
            props.update(self._sasl_properties())
        if self.tls:
            props.update(self._tls_properties())
        lines = ["# Written by lookout (streams/devtools/broker.py) on every start; edits are overwritten."]
        lines += [f"{k}={v}" for k, v in props.items()]
        return "\n".join(lines) + "\n"

    def _sasl_properties(self) -> dict:
        s = self.settings
        user, password = s.kafka_sasl_username, s.kafka_sasl_password
        login = f'username="{user}" password="{password}"'
        prefix = f"listener.name.{self.protocol.lower()}"
        return {
            "sasl.enabled.mechanisms": ",".join(LOCAL_SASL_MECHANISMS),
            "sasl.mechanism.inter.broker.protocol": s.kafka_sasl_mechanism,
            f"{prefix}.plain.sasl.jaas.config": (
                f"org.apache.kafka.common.security.plain.PlainLoginModule required {login} "
                f'user_{user}="{password}";'
            ),
            **{
                f"{prefix}.{m.lower()}.sasl.jaas.config": (
                    f"org.apache.kafka.common.security.scram.ScramLoginModule required {login};"
                )
                for m in LOCAL_SASL_MECHANISMS
                if m.startswith("SCRAM")
            },
        }

    def _tls_properties(self) -> dict:
        s = self.settings
        props = {"ssl.keystore.type": "PEM", "ssl.keystore.location": self.keystore_file}
        if s.kafka_ssl_cafile:  # the broker talks to itself over this listener too, and checks clients
            props.update(
                {"ssl.truststore.type": "PEM", "ssl.truststore.location": Path(s.kafka_ssl_cafile).resolve()}
            )
        if s.kafka_ssl_certfile:
            props["ssl.client.auth"] = "required"
        return props

    def _credentials_fingerprint(self) -> str:
        s = self.settings
        return hashlib.sha256(f"{s.kafka_sasl_username}\0{s.kafka_sasl_password}".encode()).hexdigest()

    def render_log4j(self) -> str:
        """log4j2 config: INFO to ``logs/server.log`` (rolled at 20 MB, 3 kept)."""
        log = self.log_file.as_posix()
        return "\n".join([
            "# Written by lookout (streams/devtools/broker.py).",
            "status = warn",
            "name = lookout-broker",
            # let Kafka log its own shutdown (its hook runs after log4j's otherwise)
            "shutdownHook = disable",
            "appender.file.type = RollingFile",
            "appender.file.name = FILE",
            f"appender.file.fileName = {log}",
            f"appender.file.filePattern = {log}.%i",
            "appender.file.layout.type = PatternLayout",
            "appender.file.layout.pattern = [%d] %p %m (%c)%n",
            "appender.file.policies.type = Policies",
            "appender.file.policies.size.type = SizeBasedTriggeringPolicy",
            "appender.file.policies.size.size = 20MB",
            "appender.file.strategy.type = DefaultRolloverStrategy",
            "appender.file.strategy.max = 3",
            "rootLogger.level = INFO",
            "rootLogger.appenderRef.file.ref = FILE",
            # request logging is very chatty at INFO
            "logger.request.name = kafka.request.logger",
            "logger.request.level = WARN",
            "",
        ])

    def render_pom(self) -> str:
        return f"""<project xmlns="http://maven.apache.org/POM/4.0.0">
  <!-- Written by lookout (streams/devtools/broker.py): the runtime classpath of a Kafka broker. -->
  <modelVersion>4.0.0</modelVersion>
  <groupId>lookout</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>{self.version}</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>{self.version}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>{LOG4J_VERSION}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>{LOG4J_VERSION}</version></dependency>
  </dependencies>
  <build>
    <pluginManagement>
      <plugins>
        <plugin>
          <groupId>org.apache.maven.plugins</groupId>
          <artifactId>maven-dependency-plugin</artifactId>
          <version>{DEPENDENCY_PLUGIN_VERSION}</version>
        </plugin>
      </plugins>
    </pluginManagement>
  </build>
</project>
"""

    # ------------------------------------------------------------------ jars
    def jars_ready(self) -> bool:
        return (self.kafka_dir / ".complete").is_file() and (
            self.libs_dir / f"kafka_2.13-{self.version}.jar"
        ).is_file()

    def ensure_jars(self) -> Path:
        """Make sure the broker's jars are in ``kafka_home/kafka-<version>/libs``; return that dir.

        Downloads them with Maven (``~/.m2`` caches too) the first time only.
        """
        if self.jars_ready():
            return self.libs_dir
        _require("java")
        mvn = _require("mvn")
        self.kafka_dir.mkdir(parents=True, exist_ok=True)
        with _file_lock(self.kafka_dir / ".lock"):  # another process may be downloading too
            if self.jars_ready():
                return self.libs_dir
            return self._download_jars(mvn)

    def _download_jars(self, mvn: str) -> Path:
        pom = self.kafka_dir / "pom.xml"
        pom.write_text(self.render_pom())
        mvn_log = self.kafka_dir / "mvn.log"
        tmp = self.kafka_dir / f"libs.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        self.progress(f"downloading Kafka {self.version} jars with Maven into {self.libs_dir} (once) ...")
        cmd = [mvn, "-B", "-q", "-U", "-f", str(pom), "dependency:copy-dependencies",
               f"-DoutputDirectory={tmp}", "-DincludeScope=runtime"]
        try:
            with mvn_log.open("w") as out:
                rc = subprocess.run(
                    cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
                ).returncode
        except OSError as exc:
            raise BrokerError(f"could not run Maven ({mvn}): {exc}") from None
        if rc != 0 or not (tmp / f"kafka_2.13-{self.version}.jar").is_file():
            shutil.rmtree(tmp, ignore_errors=True)
            reason = _first_maven_error(mvn_log) or f"exit code {rc}"
            raise BrokerError(
                f"downloading Kafka {self.version} jars with Maven failed: {clip(reason)} "
                f"(full output: {mvn_log})",
                detail=_tail(mvn_log, 30),
            )
        shutil.rmtree(self.libs_dir, ignore_errors=True)
        tmp.rename(self.libs_dir)
        (self.kafka_dir / ".complete").write_text(f"{len(list(self.libs_dir.glob('*.jar')))} jars\n")
        return self.libs_dir

    # ---------------------------------------------------------------- status
    def _read_pid_file(self) -> dict | None:
        try:
            data = json.loads(self.pid_file.read_text())
            data["pid"] = int(data["pid"])
            return data
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError, OSError):
            return {"pid": None}

    def _is_ours(self, pid: int | None) -> bool:
        """True if ``pid`` is alive and is kafka.Kafka running with our server.properties."""
        if not pid or pid <= 0:
            return False
        _reap(pid)
        argv = _cmdline(pid)
        return bool(argv) and "kafka.Kafka" in argv and str(self.properties_file) in argv

    def status(self) -> BrokerStatus:
        """Is the broker from this data dir running? Never signals anything."""
        info = self._read_pid_file()
        pid = info.get("pid") if info else None
        running = self._is_ours(pid)
        note = ""
        port, cport = self.port, self.controller_port
        if running and info:
            port = int(info.get("port", port))
            cport = int(info.get("controller_port", cport))
        elif info is not None:
            note = f"stale pid file {self.pid_file} (pid {pid} is not this broker)"
        elif _port_busy(self.port):
            note = f"port {self.port} is in use by another process (not a broker from {self.data_dir})"
        return BrokerStatus(
            running=running, pid=pid if running else None, port=port, controller_port=cport,
            data_dir=self.data_dir, version=self.version, log_file=self.log_file, note=note,
        )

    # ----------------------------------------------------------------- start
    def start(self, timeout: float = 90.0, *, fresh: bool = False) -> BrokerStatus:
        """Start the broker (detached) and wait until it answers; return its status.

        If this data dir's broker is already running on the same port, this
        is a no-op. ``fresh=True`` stops it if needed and wipes the data dir
        first (only a directory that is empty or was created by LocalBroker).
        """
        self.check_security()
        self._claim_data_dir()
        # one start at a time per data dir (the lock is held on the marker file)
        with _file_lock(self.data_dir / MARKER):
            if fresh:
                self.stop()
                self._wipe_data_dir()
            current = self.status()
            if current.running:
                if current.port != self.port or current.controller_port != self.controller_port:
                    raise BrokerError(
                        f"the broker from {self.data_dir} is already running on port {current.port} "
                        f"(pid {current.pid}); stop it first to use port {self.port}")
                return current
            for what, port in (("broker", self.port), ("controller", self.controller_port)):
                if _port_busy(port):
                    raise BrokerError(
                        f"{what} port {port} is already in use by another process (not a broker started "
                        f"from {self.data_dir}); stop it or pick another port (--port/--controller-port)")
            java = _require("java")
            libs = self.ensure_jars()
            self._write_config()
            self._format_storage(java, libs)

            cmd = [
                java,
                *JVM_OPTS,
                f"-Dlog4j2.configurationFile={self.log4j_file}",
                f"-Dkafka.logs.dir={self.logs_dir}",
                "-cp",
                f"{libs}/*",
                "kafka.Kafka",
                str(self.properties_file),
            ]
            self.progress(f"starting Kafka {self.version} on {self.bootstrap} (data dir {self.data_dir}) ...")
            self._log_offsets = {
                f: _size(f) for f in (self.log_file, self.stdout_file)
            }  # earlier runs' lines
            with self.stdout_file.open("ab") as out:
                proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                        cwd=self.data_dir, start_new_session=True, close_fds=True)
            _CHILDREN[proc.pid] = proc
            self._write_pid_file(proc.pid)
            t0 = time.monotonic()
            try:
                self._wait_until_ready(proc, timeout)
            except BaseException:
                self._kill(proc.pid, 10.0)
                with contextlib.suppress(FileNotFoundError):
                    self.pid_file.unlink()
                raise
        self.progress(f"Kafka is up after {time.monotonic() - t0:.1f}s")
        return self.status()

    def _claim_data_dir(self) -> None:
        """Create the data dir (or adopt an empty one) and mark it as ours."""
        d = self.data_dir
        if d.exists() and not d.is_dir():
            raise BrokerError(f"data dir {d} exists and is not a directory")
        if d.is_dir() and any(d.iterdir()) and not (d / MARKER).exists():
            raise BrokerError(f"refusing to use {d}: it is not empty and was not created by 'lookout broker' "
                              "(choose another --data-dir)")
        d.mkdir(parents=True, exist_ok=True)
        marker = d / MARKER
        if not marker.exists():
            marker.write_text("data dir of a local Kafka broker managed by lookout "
                              "(streams/devtools/broker.py)\n")

    def _wipe_data_dir(self) -> None:
        """Delete everything in the (claimed) data dir but the marker."""
        for child in self.data_dir.iterdir():
            if child.name == MARKER:
                continue
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()

    def _write_config(self) -> None:
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.properties_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            os.fchmod(fd, 0o600)  # an older file may have been world-readable
            f.write(self.render_properties())
        if self.tls:
            s = self.settings
            pem = (
                Path(s.broker_ssl_keyfile).read_text().strip()
                + "\n"
                + Path(s.broker_ssl_certfile).read_text()
            )
            fd = os.open(self.keystore_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(pem)
        self.log4j_file.write_text(self.render_log4j())

    def _format_storage(self, java: str, libs: Path) -> None:
        if (self.log_dirs / "meta.properties").is_file():
            self._check_formatted_credentials()
            return
        cluster_id = _kafka_uuid()
        cmd = [java, "-Xmx256m", f"-Dlog4j2.configurationFile={self.log4j_file}", "-cp", f"{libs}/*",
               "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(self.properties_file)]
        s = self.settings
        if self.sasl:  # KRaft: SCRAM users are records in the metadata log, added at format time
            for m in LOCAL_SASL_MECHANISMS:
                if m.startswith("SCRAM"):
                    cmd += [
                        "--add-scram",
                        f"{m}=[name={s.kafka_sasl_username},password={s.kafka_sasl_password}]",
                    ]
        self.progress(f"formatting {self.log_dirs} (cluster id {cluster_id}) ...")
        with contextlib.suppress(FileNotFoundError):
            self.credentials_file.unlink()
        res = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, cwd=self.data_dir)
        if self.sasl and res.returncode == 0:  # a hash of the password: owner-only, like server.properties
            fd = os.open(self.credentials_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(self._credentials_fingerprint() + "\n")
        if res.returncode != 0:
            out = res.stdout.replace(s.kafka_sasl_password, "***") if s.kafka_sasl_password else res.stdout
            lines = [ln for ln in out.splitlines() if ln.strip()]
            raise BrokerError(f"formatting Kafka storage in {self.log_dirs} failed: "
                              f"{clip(lines[-1] if lines else f'exit code {res.returncode}')}",
                              detail="\n".join(lines[-20:]))

    def _check_formatted_credentials(self) -> None:
        """A formatted storage only knows the SASL user it was formatted with: say so, not 'auth failed'."""
        if not self.sasl:
            return
        try:
            recorded = self.credentials_file.read_text().strip()
        except OSError:
            recorded = ""
        if recorded != self._credentials_fingerprint():
            raise BrokerError(f"the storage in {self.log_dirs} was formatted without this SASL user/password "
                              "(SCRAM users are created at format time); start with --fresh to reformat it")

    def _write_pid_file(self, pid: int) -> None:
        tmp = self.pid_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({
            "pid": pid, "port": self.port, "controller_port": self.controller_port,
            "version": self.version, "started_at": time.time(),
        }) + "\n")
        tmp.replace(self.pid_file)

    def _wait_until_ready(self, proc: subprocess.Popen, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            rc = proc.poll()
            if rc is not None:
                raise self._startup_error(f"the broker exited with code {rc} during startup")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._startup_error(
                    f"the broker did not answer on {self.bootstrap} within {timeout:.0f}s"
                )
            if can_connect(HOST, self.port) and answers(self.bootstrap, min(10.0, max(remaining, 1.0)),
                                                          self.client_kwargs()):
                return
            time.sleep(0.25)

    def _startup_error(self, what: str) -> BrokerError:
        offsets = getattr(self, "_log_offsets", {})
        log = _tail(self.log_file, 400, offsets.get(self.log_file, 0))
        out = _tail(self.stdout_file, 400, offsets.get(self.stdout_file, 0))
        reason = (_last_matching(log, ("ERROR", "FATAL", "Exception"))
                  or _last_matching(out, ("Error", "ERROR", "Exception")))
        msg = what + (f": {clip(reason)}" if reason else "") + f" (log: {self.log_file})"
        detail = "\n".join([
            f"--- last lines of {self.log_file}", *log.splitlines()[-25:],
            f"--- last lines of {self.stdout_file}", *out.splitlines()[-10:],
        ])
        return BrokerError(msg, detail=detail)

    # ------------------------------------------------------------------ stop
    def stop(self, timeout: float = 30.0) -> int | None:
        """Stop the broker named in this data dir's pid file; return its pid, or None.

        SIGTERM, then SIGKILL after ``timeout`` seconds. A pid file naming a
        process that is not this broker (dead, reused pid, another broker) is
        removed as stale; that process is never signalled.
        """
        info = self._read_pid_file()
        if info is None:
            return None
        pid = info.get("pid")
        if not self._is_ours(pid):
            with contextlib.suppress(FileNotFoundError):
                self.pid_file.unlink()
            return None
        self.progress(f"stopping Kafka (pid {pid}) ...")
        self._kill(pid, timeout)
        with contextlib.suppress(FileNotFoundError):
            self.pid_file.unlink()
        return pid

    def _kill(self, pid: int, timeout: float) -> None:
        """SIGTERM ``pid`` (which we verified is ours or just spawned), SIGKILL after ``timeout``."""
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                _reap(pid)
                if not _alive(pid):
                    return
                time.sleep(0.1)
        if _alive(pid):
            raise BrokerError(f"broker pid {pid} did not exit after SIGKILL")


# ---------------------------------------------------------------- helpers
#: processes this Python process spawned, so they can be reaped (no zombies)
_CHILDREN: dict[int, subprocess.Popen] = {}


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    import fcntl

    with path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _require(tool: str) -> str:
    path = shutil.which(tool)
    if path:
        return path
    hints = {
        "java": "Java 17+ ('java') is not on PATH; install it "
                "(Debian: apt-get install openjdk-17-jre-headless)",
        "mvn": "Maven ('mvn') is not on PATH; it is needed once to download the Kafka jars "
        "(Debian: apt-get install maven)",
    }
    raise BrokerError(hints.get(tool, f"'{tool}' is not on PATH"))


def _kafka_uuid() -> str:
    """A Kafka cluster id: URL-safe base64 of a random UUID, like ``StorageTool random-uuid``."""
    while True:
        s = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not s.startswith("-"):
            return s


def _reap(pid: int) -> None:
    proc = _CHILDREN.get(pid)
    if proc is not None:
        if proc.poll() is not None:
            _CHILDREN.pop(pid, None)
        return
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError):
        if stat.read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def _cmdline(pid: int) -> list[str]:
    if not _alive(pid):
        return []
    proc = Path(f"/proc/{pid}/cmdline")
    if proc.parent.exists():
        try:
            return [a for a in proc.read_bytes().decode(errors="replace").split("\0") if a]
        except OSError:
            return []
    try:  # no /proc (macOS): fall back to ps
        out = subprocess.run(["ps", "-p", str(pid), "-o", "command="], capture_output=True, text=True).stdout
    except OSError:
        return []
    return out.split()


def _port_busy(port: int, host: str = HOST) -> bool:
    """True if something already listens on ``host:port`` (bind test, then connect test)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, port))
    except OSError as exc:
        return exc.errno in (errno.EADDRINUSE, errno.EACCES) or can_connect(host, port)
    finally:
        s.close()
    return False


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _tail(path: Path, n: int, start: int = 0) -> str:
    """The last ``n`` lines of ``path`` (only what was written after byte ``start``)."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            if size < start:  # the log was rolled over meanwhile
                start = 0
            f.seek(max(start, size - 64 * 1024))
            lines = f.read().decode(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-n:])


def _last_matching(text: str, needles: tuple[str, ...]) -> str:
    for line in reversed(text.splitlines()):
        if any(nd in line for nd in needles):
            return line.strip()
    return ""


def _first_maven_error(path: Path) -> str:
    """The first meaningful ``[ERROR]`` line of a Maven log (the later ones are boilerplate)."""
    for line in _tail(path, 400).splitlines():
        line = _ANSI.sub("", line).strip()
        if line.startswith("[ERROR]") and len(line) > len("[ERROR]") + 10:
            return line[len("[ERROR]"):].strip()
    return ""


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


if __name__ == "__main__":  # pragma: no cover - convenience: python -m streams.devtools.broker
    st = LocalBroker(Settings.from_env(), progress=lambda m: print(m, file=sys.stderr)).status()
    print(json.dumps(st.as_dict(), indent=2))
