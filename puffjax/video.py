"""Videos from rendered frames: MP4 (imageio's ffmpeg plugin) or GIF (Pillow), no display needed.

    write_video("run/video.gif", frames, fps=30)   # frames: [T, H, W, 3] uint8 (or a list of them)
    Video("run/video.gif")                          # shows inline in a notebook
"""
from __future__ import annotations

import base64
import contextlib
import os
import warnings

import numpy as np

FORMATS = {".gif": "gif", ".mp4": "mp4"}
_MIME = {"gif": "image/gif", "mp4": "video/mp4"}


def video_format(path: str) -> str:
    """``"gif"`` or ``"mp4"`` from the file extension; any other extension is a ValueError."""
    ext = os.path.splitext(str(path))[1].lower()
    if ext not in FORMATS:
        raise ValueError(f"{path}: unknown video extension {ext or '(none)'!r}; use .gif or .mp4")
    return FORMATS[ext]


def _imageio():
    try:
        import imageio.v3 as iio
    except ImportError:
        raise ImportError("writing videos needs imageio: pip install 'puffjax[video]'") from None
    return iio


def write_video(path: str, frames, fps: int = 30) -> str:
    """Write ``frames`` ([T, H, W, 3] uint8) to ``path`` (.gif or .mp4); returns ``path``.

    MP4 needs the ``imageio-ffmpeg`` package; frame sizes are padded to even numbers there
    (H.264 needs them), so a 331x577 render becomes 332x578."""
    fmt = video_format(path)
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise ValueError(f"{path}: expected frames [T, H, W, 3] uint8 with T > 0, got "
                         f"{frames.shape} {frames.dtype}")
    iio = _imageio()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if fmt == "gif":
        _write_gif(path, frames, fps, iio)
    else:
        try:
            import imageio_ffmpeg  # noqa: F401
        except ImportError:
            raise ImportError(f"{path}: MP4 needs imageio-ffmpeg (pip install imageio-ffmpeg); "
                              f"or write a .gif") from None
        t, h, w, _ = frames.shape
        if h % 2 or w % 2:
            frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)))
        # imageio's ffmpeg plugin (imageio-ffmpeg's bundled binary); H.264, yuv420p.
        with _quiet_fork():
            iio.imwrite(path, frames, extension=".mp4", plugin="FFMPEG", fps=fps, macro_block_size=1)
    return path


@contextlib.contextmanager
def _quiet_fork():
    # imageio runs the ffmpeg binary as a child process that exec()s at once: JAX's warning
    # about os.fork() in a multithreaded process does not apply to it.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)
        yield


def _palette_indices(frames: np.ndarray):
    """(palette [K, 3], indices [T, H, W] uint8) when the frames use at most 256 colours, else None."""
    lut = np.full(1 << 24, 0xFFFF, np.uint16)  # packed RGB -> palette index
    colors = np.zeros(0, np.uint32)
    out = np.empty(frames.shape[:3], np.uint8)
    for t, frame in enumerate(frames):
        packed = (frame[..., 0].astype(np.uint32) << 16) | (frame[..., 1].astype(np.uint32) << 8) | frame[..., 2]
        idx = lut[packed]
        missing = idx == 0xFFFF
        if missing.any():
            new = np.unique(packed[missing])
            if len(colors) + len(new) > 256:
                return None
            lut[new] = np.arange(len(colors), len(colors) + len(new))
            colors = np.concatenate([colors, new])
            idx = lut[packed]
        out[t] = idx
    palette = np.stack([(colors >> 16) & 255, (colors >> 8) & 255, colors & 255], -1).astype(np.uint8)
    return palette, out


def gif_frame_ms(fps: float) -> int:
    """A GIF frame's duration: GIF counts in hundredths of a second, so 30 fps plays at 33.3."""
    return 10 * max(1, round(100 / fps))


def _write_gif(path: str, frames: np.ndarray, fps: int, iio) -> None:
    # The C renderers draw with a handful of flat colours: map them onto one exact shared palette
    # (lossless, and much faster than quantizing every frame). Otherwise imageio quantizes.
    # Pillow merges identical consecutive frames into one GIF frame (their durations add up).
    duration = gif_frame_ms(fps)
    found = _palette_indices(frames)
    if found is None:
        iio.imwrite(path, frames, extension=".gif", duration=duration, loop=0)
        return
    from PIL import Image
    palette, index = found
    images = []
    for t in range(len(frames)):
        im = Image.fromarray(index[t])  # mode "L"; putpalette makes it "P"
        im.putpalette(palette.ravel().tolist())
        images.append(im)
    images[0].save(path, format="GIF", save_all=True, append_images=images[1:], duration=duration,
                   loop=0, optimize=False)


def read_video(path: str) -> np.ndarray:
    """All frames of a video file as [T, H, W, 3] uint8 (for checks and notebooks)."""
    with _quiet_fork():
        frames = _imageio().imread(path, index=None)
    frames = np.asarray(frames)
    if frames.ndim == 3:  # a single frame
        frames = frames[None]
    return frames[..., :3]


class Video:
    """A video file that displays itself inline in Jupyter (GIF as <img>, MP4 as <video>)."""

    def __init__(self, path: str):
        self.path = str(path)
        self.format = video_format(self.path)

    def _repr_html_(self) -> str:
        with open(self.path, "rb") as f:
            data = base64.b64encode(f.read()).decode()
        src = f"data:{_MIME[self.format]};base64,{data}"
        if self.format == "gif":
            return f'<img src="{src}" alt="{os.path.basename(self.path)}"/>'
        return f'<video src="{src}" controls autoplay loop muted></video>'

    def __repr__(self) -> str:
        return f"Video({self.path!r})"
