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
    """Write ``frames`` ([T, H, W, 3] uint8, or a sequence of [H, W, 3]) to ``path`` (.gif or
    .mp4); returns ``path``. See :class:`VideoWriter` for the formats."""
    writer = VideoWriter(path, fps)
    try:
        for frame in frames:
            writer.append(frame)
    except BaseException:
        writer.abort()
        raise
    return writer.close()


class VideoWriter:
    """Frames in, one video file out, without holding the video in memory as RGB.

    ``.mp4``: streamed to ffmpeg (imageio-ffmpeg), H.264; odd frame sizes are padded to even
    ones (H.264 needs them), so a 331x577 render becomes 332x578. ``.gif``: the C renderers
    draw with a handful of flat colours, so frames are kept as indices into one exact shared
    palette (one byte a pixel; lossless) and written by Pillow at :meth:`close`, which merges
    identical consecutive frames (their durations add up). Frames with more than 256 colours
    in all are quantized by imageio instead.
    """

    def __init__(self, path: str, fps: int = 30):
        self.path, self.fps = str(path), fps
        self.format = video_format(self.path)
        self.frames = 0
        self._size = None
        self._iio = _imageio()
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        if self.format == "mp4":
            try:
                import imageio_ffmpeg  # noqa: F401
            except ImportError:
                raise ImportError(f"{self.path}: MP4 needs imageio-ffmpeg (pip install imageio-ffmpeg); "
                                  f"or write a .gif") from None
            import imageio.v2 as iio2
            self._writer = iio2.get_writer(self.path, format="FFMPEG", mode="I", fps=fps, macro_block_size=1)
        else:
            self._lut = None  # packed RGB -> palette index (0xFFFF: not seen yet)
            self._colors = np.zeros(0, np.uint32)
            self._indices: list[np.ndarray] = []
            self._rgb: list[np.ndarray] | None = None  # after more than 256 colours

    def append(self, frame) -> None:
        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[-1] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"{self.path}: expected a frame [H, W, 3] uint8, got {frame.shape} {frame.dtype}")
        if self._size is None:
            self._size = frame.shape
        elif frame.shape != self._size:
            raise ValueError(f"{self.path}: frame {self.frames} is {frame.shape}, the first was {self._size}")
        self.frames += 1
        if self.format == "mp4":
            h, w, _ = frame.shape
            if h % 2 or w % 2:
                frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)))
            with _quiet_fork():
                self._writer.append_data(frame)
        elif self._rgb is not None:
            self._rgb.append(frame.copy())
        else:
            index = self._palette_index(frame)
            if index is None:  # too many colours: back to RGB frames, quantized at the end
                self._rgb = [self._palette()[i] for i in self._indices] + [frame.copy()]
                self._indices = []
            else:
                self._indices.append(index)

    def _palette(self) -> np.ndarray:
        c = self._colors
        return np.stack([(c >> 16) & 255, (c >> 8) & 255, c & 255], -1).astype(np.uint8)

    def _palette_index(self, frame: np.ndarray):
        if self._lut is None:
            self._lut = np.full(1 << 24, 0xFFFF, np.uint16)
        packed = (frame[..., 0].astype(np.uint32) << 16) | (frame[..., 1].astype(np.uint32) << 8) | frame[..., 2]
        idx = self._lut[packed]
        missing = idx == 0xFFFF
        if missing.any():
            new = np.unique(packed[missing])
            if len(self._colors) + len(new) > 256:
                return None
            self._lut[new] = np.arange(len(self._colors), len(self._colors) + len(new))
            self._colors = np.concatenate([self._colors, new])
            idx = self._lut[packed]
        return idx.astype(np.uint8)

    def close(self) -> str:
        """Finish the file and return its path."""
        if self.frames == 0:
            self.abort()
            raise ValueError(f"{self.path}: no frames to write")
        if self.format == "mp4":
            with _quiet_fork():
                self._writer.close()
            return self.path
        duration = gif_frame_ms(self.fps)
        if self._rgb is not None:
            self._iio.imwrite(self.path, np.stack(self._rgb), extension=".gif", duration=duration, loop=0)
        else:
            from PIL import Image
            palette = self._palette().ravel().tolist()
            images = []
            for index in self._indices:
                im = Image.fromarray(index)  # mode "L"; putpalette makes it "P"
                im.putpalette(palette)
                images.append(im)
            images[0].save(self.path, format="GIF", save_all=True, append_images=images[1:],
                           duration=duration, loop=0, optimize=False)
        self._indices, self._rgb, self._lut = [], None, None
        return self.path

    def abort(self) -> None:
        """Drop the frames and any partial file."""
        if self.format == "mp4":
            with contextlib.suppress(Exception), _quiet_fork():
                self._writer.close()
        self._indices, self._rgb, self._lut = [], None, None
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.path)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        if exc_type is None:
            self.close()
        else:
            self.abort()


@contextlib.contextmanager
def _quiet_fork():
    # imageio runs the ffmpeg binary as a child process that exec()s at once: JAX's warning
    # about os.fork() in a multithreaded process does not apply to it.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)
        yield


def gif_frame_ms(fps: float) -> int:
    """A GIF frame's duration: GIF counts in hundredths of a second, so 30 fps plays at 33.3."""
    return 10 * max(1, round(100 / fps))


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
