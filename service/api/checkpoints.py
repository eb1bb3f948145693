"""Routes: upload and download a trial's checkpoint, streamed both ways."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request, status
from fastapi.responses import StreamingResponse

from rung import schemas as w
from service.usecases import checkpoints
from service.usecases.context import Context

from .auth import READ, WORK, allowed
from .deps import context, errors, study_key, trial_key

router = APIRouter(
    prefix="/v1/studies/{study_id}/trials/{trial_id}/checkpoint",
    tags=["checkpoints"],
)
Ctx = Annotated[Context, Depends(context)]
BINARY = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}


@router.put(
    "",
    summary="Upload a trial's checkpoint",
    responses=errors(
        404,
        413,
        422,
        conflict="the caller does not hold the trial's lease",
        _413="the checkpoint is over RUNG_MAX_CHECKPOINT_BYTES",
        _422="a missing header, or bytes that do not match X-Checkpoint-SHA256",
    ),
    status_code=status.HTTP_201_CREATED,
    response_model=w.CheckpointInfo,
    dependencies=allowed(WORK),
    openapi_extra={"requestBody": {"required": True, "content": BINARY}},
)
async def upload_checkpoint(
    study_id: str,
    trial_id: str,
    request: Request,
    ctx: Ctx,
    x_rung_worker: Annotated[
        str, Header(min_length=1, max_length=200, description="the worker holding the lease")
    ],
    x_checkpoint_sha256: Annotated[
        str | None, Header(pattern="^[0-9a-fA-F]{64}$", description="checked by the server")
    ] = None,
) -> w.CheckpointInfo:
    """Store the trial's checkpoint (any bytes; a new upload replaces the old one). Only the
    worker holding the trial's lease may upload."""
    saved = await checkpoints.upload(
        ctx,
        study_key(study_id),
        trial_key(study_id, trial_id),
        x_rung_worker,
        request.stream(),
        length=request.headers.get("content-length"),
        sha256=x_checkpoint_sha256,
        max_bytes=request.app.state.settings.max_checkpoint_bytes,
    )
    return w.CheckpointInfo(trial_id=saved.trial_id, size=saved.size, sha256=saved.sha256)


@router.get(
    "",
    dependencies=allowed(READ),
    response_class=StreamingResponse,
    summary="Download a trial's checkpoint",
    responses={
        200: {"content": BINARY, "description": "the checkpoint's bytes"},
        **errors(404, _404="no such study or trial, or the trial has no checkpoint"),
    },
)
def download_checkpoint(study_id: str, trial_id: str, ctx: Ctx) -> StreamingResponse:
    """The trial's checkpoint; its SHA-256 is in the X-Checkpoint-SHA256 header."""
    found, chunks = checkpoints.read(ctx, study_key(study_id), trial_key(study_id, trial_id))
    return StreamingResponse(
        chunks,
        media_type="application/octet-stream",
        headers={"X-Checkpoint-SHA256": found.sha256, "Content-Length": str(found.size)},
    )
