"""The embedded broker: kombu's filesystem transport, made safe for several processes (R11).

kombu's own filesystem transport opens a message file under its final name and then writes it,
and its readers move and read files without a lock: a consumer polling at the wrong moment reads
half a message and dies with `JSONDecodeError` (this stopped the studio twice in 30 minutes). Its
exchange tables are rewritten in place the same way. This transport keeps the folder layout and
the `filesystem://` URL, and changes how files change hands:

- a message is written under a name no reader looks at (`….msg.part`) and renamed into place, so
  a reader sees a whole message or none;
- a reader claims a message by renaming it into the processed folder (one rename wins, so two
  consumers never read the same file) and reads it only then;
- a file that still cannot be read as a message (garbage, a crash of an old writer) is moved to
  the `broken` folder with a log line, and the consumer goes on with the next message;
- exchange tables are read-modify-written under a lock file and replaced by rename.

`register()` makes `filesystem://` resolve to this transport in every process that loads the
Celery app (the web server, the system worker, the scheduler and every node).
"""

import fcntl
import logging
import os
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from queue import Empty
from time import monotonic

from kombu import transport as kombu_transport
from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads
from kombu.utils.objects import cached_property

log = logging.getLogger("studio.broker")

PART_SUFFIX = ".part"  # never matches `<queue>.msg`, so readers skip a message being written


class Channel(filesystem.Channel):
    # --- Messages --------------------------------------------------------------------------------
    def _put(self, queue, payload, **kwargs):
        """Write the message under a temporary name, then rename it into place (atomic)."""
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = final + PART_SUFFIX
        try:
            with open(partial, "wb") as fh:
                fh.write(str_to_bytes(dumps(payload)))
            os.rename(partial, final)
        except OSError as exc:
            _unlink_quietly(partial)
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc

    def _get(self, queue):
        """Claim the oldest whole message of `queue` by renaming it, then read it."""
        wanted = f"{queue}.msg"
        for filename in sorted(os.listdir(self.data_folder_in)):
            if filename.partition(".")[2] != wanted:
                continue
            claimed = os.path.join(self.processed_folder, filename)
            try:
                os.rename(os.path.join(self.data_folder_in, filename), claimed)
            except FileNotFoundError:
                continue  # another consumer took it first
            try:
                with open(claimed, "rb") as fh:
                    raw = fh.read()
            except OSError as exc:
                raise ChannelError(f"Cannot read file {claimed!r} from queue.") from exc
            payload = self._parse(raw)
            if payload is None:
                self._set_aside(claimed, filename)
                continue
            if not self.store_processed:
                _unlink_quietly(claimed)
            return payload
        raise Empty()

    def _parse(self, raw: bytes):
        """The message in `raw`, or None if it is not one this transport could deliver."""
        try:
            payload = loads(bytes_to_str(raw))
            self.Message(payload, channel=self)  # the same checks delivery makes (properties, body)
        except Exception:  # noqa: BLE001 - any undeliverable file is set aside, never raised
            return None
        return payload

    def _set_aside(self, path: str, filename: str) -> None:
        target = os.path.join(self.broken_folder, filename)
        try:
            os.rename(path, target)
        except OSError:
            _unlink_quietly(path)
            target = "(removed)"
        log.error("embedded broker: unreadable message %s set aside in %s", filename, target)

    # --- Exchange tables -------------------------------------------------------------------------
    def get_table(self, exchange):
        file = self._exchange_file(exchange)
        try:
            raw = file.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise ChannelError(f"Cannot open {file}") from exc
        return [filesystem.exchange_queue_t(*q) for q in loads(bytes_to_str(raw))]

    def _queue_bind(self, exchange, routing_key, pattern, queue):
        entry = filesystem.exchange_queue_t(routing_key or "", pattern or "", queue or "")
        with self._table_locked(exchange) as table:
            if entry not in table:
                table.insert(0, entry)

    def _delete(self, queue, exchange, routing_key, pattern, *args, **kwargs):
        filesystem.virtual.Channel._delete(self, queue, exchange, routing_key, pattern, *args, **kwargs)
        entry = filesystem.exchange_queue_t(routing_key or "", pattern or "", queue or "")
        with self._table_locked(exchange) as table:
            if entry in table:
                table.remove(entry)

    @contextmanager
    def _table_locked(self, exchange):
        """Yield the exchange's table (a list to change in place) under its lock; then replace
        the file by rename, so readers, who take no lock, see the old table or the new one."""
        file = self._exchange_file(exchange)
        self.control_folder.mkdir(exist_ok=True)
        try:
            with open(f"{file}.lock", "a") as lock:
                fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
                table = self.get_table(exchange)
                before = list(table)
                yield table
                if table != before:
                    partial = f"{file}.{uuid.uuid4().hex}{PART_SUFFIX}"
                    Path(partial).write_bytes(str_to_bytes(dumps(table)))
                    os.replace(partial, file)
        except OSError as exc:
            raise ChannelError(f"Cannot update {file}") from exc

    # --- Folders ---------------------------------------------------------------------------------
    @cached_property
    def processed_folder(self):
        """Claimed messages go here: it must be on the same file system as the queue folder."""
        folder = self.transport_options.get("processed_folder") or os.path.join(self.data_folder_in, "..", "processed")
        os.makedirs(folder, exist_ok=True)
        return folder

    @cached_property
    def broken_folder(self):
        folder = self.transport_options.get("broken_folder") or os.path.join(self.processed_folder, "..", "broken")
        os.makedirs(folder, exist_ok=True)
        return folder


class Transport(filesystem.Transport):
    Channel = Channel


def register() -> None:
    """Make `filesystem://` mean this transport in this process."""
    kombu_transport.TRANSPORT_ALIASES["filesystem"] = "studio.broker:Transport"
    kombu_transport._transport_cache.pop("filesystem", None)


def remove_stale_partial_files(folders, max_age_seconds: float = 3600) -> int:
    """Remove `.part` files a writer killed mid-write left behind (readers never look at them)."""
    removed = 0
    cutoff = time.time() - max_age_seconds
    for folder in folders:
        for path in Path(folder).glob(f"*{PART_SUFFIX}"):
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
    return removed


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
