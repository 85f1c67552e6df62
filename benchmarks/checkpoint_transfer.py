"""Checkpoint-sized transfers to and from S3: one PUT / GET against boto3's multipart transfer (parts sent and
fetched on parallel connections, vlp's `multipart_config`), on a loopback S3 server. Random bytes, so nothing
compresses. `S3Storage.write_bytes` is timed too: it is what the checkpointer calls."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

from vlp.benchmarks.loopback import loopback_s3
from vlp.benchmarks.report import BenchReport, Column
from vlp.benchmarks.stats import alternating, ratio, summarize

def run_checkpoint_transfer(workdir: Path, size_mb: int = 128, repeats: int = 3) -> BenchReport:
    from vlp.platform.storage.s3 import MULTIPART_CONNECTIONS, MULTIPART_PART_BYTES, S3Storage, make_client, multipart_config
    from vlp.platform.storage.uris import split_s3

    payload = os.urandom(size_mb * 1024 * 1024)
    config = multipart_config()
    report = BenchReport(
        name="checkpoint-transfer",
        title=f"Checkpoint transfer to loopback S3: {size_mb} MB, single request vs multipart ({MULTIPART_PART_BYTES >> 20} MB "
              f"parts, {MULTIPART_CONNECTIONS} connections)",
        settings={"size_mb": size_mb, "repeats": repeats, "part_mb": MULTIPART_PART_BYTES >> 20, "concurrency": MULTIPART_CONNECTIONS},
        columns=[Column("transfer", "transfer"), Column("mb_per_second", "MB/s (median)", "{:.0f}"),
                 Column("range", "min–max"), Column("speedup", "× single request", "{:.2f}")],
    )
    with loopback_s3(Path(workdir) / "s3") as bucket_uri:
        bucket, _ = split_s3(bucket_uri + "/x")
        client = make_client()
        storage = S3Storage(client)
        client.put_object(Bucket=bucket, Key="ckpt/read.pt", Body=payload)
        transfers = {
            "write: one PUT": lambda: client.put_object(Bucket=bucket, Key="ckpt/put.pt", Body=payload),
            "write: multipart": lambda: client.upload_fileobj(io.BytesIO(payload), bucket, "ckpt/multipart.pt", Config=config),
            "write: vlp write_bytes": lambda: storage.write_bytes(f"s3://{bucket}/ckpt/vlp.pt", payload),
            "read: one GET": lambda: client.get_object(Bucket=bucket, Key="ckpt/read.pt")["Body"].read(),
            "read: ranged parts": lambda: client.download_fileobj(bucket, "ckpt/read.pt", io.BytesIO(), Config=config),
        }
        rates: dict[str, list[float]] = {name: [] for name in transfers}
        for repeat, name in alternating(list(transfers), repeats):
            started = time.perf_counter()
            transfers[name]()
            seconds = time.perf_counter() - started
            rates[name].append(size_mb / seconds)
            report.runs.append({"transfer": name, "repeat": repeat, "seconds": seconds})
    medians = {name: summarize(values)["median"] for name, values in rates.items()}
    for name, values in rates.items():
        summary = summarize(values)
        baseline = medians["write: one PUT"] if name.startswith("write") else medians["read: one GET"]
        report.rows.append({"transfer": name, "mb_per_second": summary["median"],
                            "range": f"{summary['min']:.0f}–{summary['max']:.0f}", "speedup": ratio(summary["median"], baseline)})
    report.summary = {"multipart_write_speedup": ratio(medians["write: multipart"], medians["write: one PUT"]),
                      "ranged_read_speedup": ratio(medians["read: ranged parts"], medians["read: one GET"])}
    report.notes = ["a loopback moto server is one Python process: it shows request overheads, not a real object store's bandwidth"]
    return report.finish()
