"""The baseline a Python team would write: FastAPI + SQLite (WAL, synchronous=FULL) for the
same submit and poll as ltx-serve — an API key checked by its SHA-256, the job, a credit hold
and a ledger row in one durable transaction, the job read back as JSON. Run by bench/run with
uvicorn, one worker process per core.

    LTX_BASELINE_DB=/tmp/b.db LTX_KEY=... uvicorn fastapi_app:app --workers 2
"""

import hashlib
import json
import os
import sqlite3
import time
import uuid

from fastapi import FastAPI, Header, HTTPException, Request
from fastapi.responses import JSONResponse

DB = os.environ.get("LTX_BASELINE_DB", "baseline.db")
PRICE_MICROS = 179_800
app = FastAPI()


def connect() -> sqlite3.Connection:
    conn = sqlite3.connect(DB, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA busy_timeout = 5000")
    return conn


def setup() -> None:
    conn = connect()
    conn.executescript("""
        CREATE TABLE IF NOT EXISTS keys (hash TEXT PRIMARY KEY, account_id TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS accounts (id TEXT PRIMARY KEY, balance INTEGER NOT NULL, held INTEGER NOT NULL);
        CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, account_id TEXT NOT NULL, status TEXT NOT NULL,
            request TEXT NOT NULL, price INTEGER NOT NULL, created_at REAL NOT NULL);
        CREATE TABLE IF NOT EXISTS ledger (id INTEGER PRIMARY KEY, account_id TEXT NOT NULL, job_id TEXT,
            kind TEXT NOT NULL, amount INTEGER NOT NULL);
    """)
    key = os.environ.get("LTX_KEY")
    if key:
        digest = hashlib.sha256(key.encode()).hexdigest()
        conn.execute("INSERT OR IGNORE INTO accounts VALUES ('bench', 1000000000000, 0)")
        conn.execute("INSERT OR IGNORE INTO keys VALUES (?, 'bench')", (digest,))


setup()
db = connect()


def account_of(authorization: str | None) -> str:
    if not authorization or not authorization.startswith("Bearer "):
        raise HTTPException(401, "missing API key")
    digest = hashlib.sha256(authorization[7:].encode()).hexdigest()
    row = db.execute("SELECT account_id FROM keys WHERE hash = ?", (digest,)).fetchone()
    if row is None:
        raise HTTPException(401, "invalid API key")
    return row[0]


def job_json(row) -> dict:
    return {"job_id": row[0], "status": row[2], "request": json.loads(row[3]),
            "price_usd": f"{row[4] / 1e6:.4f}", "created_at": row[5], "result": None, "completed_at": None}


@app.post("/generate/video/lightricks/ltx-video-2.3-22b")
async def submit(request: Request, authorization: str | None = Header(default=None)):
    account = account_of(authorization)
    body = await request.json()
    if not isinstance(body.get("prompt"), str) or not body["prompt"].strip():
        raise HTTPException(400, "prompt is required")
    job_id = str(uuid.uuid4())
    db.execute("BEGIN IMMEDIATE")
    try:
        balance, held = db.execute("SELECT balance, held FROM accounts WHERE id = ?", (account,)).fetchone()
        if balance - held < PRICE_MICROS:
            db.execute("ROLLBACK")
            raise HTTPException(402, "insufficient credits")
        row = (job_id, account, "queued", json.dumps(body), PRICE_MICROS, time.time())
        db.execute("INSERT INTO jobs VALUES (?, ?, ?, ?, ?, ?)", row)
        db.execute("UPDATE accounts SET held = held + ? WHERE id = ?", (PRICE_MICROS, account))
        db.execute("INSERT INTO ledger (account_id, job_id, kind, amount) VALUES (?, ?, 'hold', ?)",
                   (account, job_id, PRICE_MICROS))
        db.execute("COMMIT")
    except HTTPException:
        raise
    except Exception:
        db.execute("ROLLBACK")
        raise
    return JSONResponse(job_json(row))


@app.get("/jobs/{job_id}")
async def get_job(job_id: str, authorization: str | None = Header(default=None)):
    account = account_of(authorization)
    row = db.execute("SELECT * FROM jobs WHERE id = ? AND account_id = ?", (job_id, account)).fetchone()
    if row is None:
        raise HTTPException(404, "not found")
    return JSONResponse(job_json(row))


@app.get("/healthz")
async def healthz():
    return {"ok": True}
