"""Rasterise triangle meshes with exact metric z-depth: moderngl on an EGL context (Mesa llvmpipe, no GPU needed).

The camera is a pinhole in the optical frame (x right, y down, z forward; see ``rgbd_fusion_core.geometry.camera``);
meshes are given in that frame, in metres. Each pixel gets the z of the nearest surface (perspective-correct
interpolation of camera z, so a plane is exact up to float32), a Lambertian shade (ambient plus one directional
light) of the per-vertex albedo, and coverage. One EGL context per process (several contexts in one process
misbehave on llvmpipe), created on first use by ``get_context``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NEAR_M = 0.05
FAR_M = 100.0

_VERTEX_SHADER = """
#version 330
uniform vec4 intrinsics;   // fx, fy, cx, cy in pixels
uniform vec2 image_size;   // width, height in pixels
uniform vec2 clip_range;   // near, far in metres
in vec3 in_position;       // optical frame, metres
in vec3 in_normal;
in vec3 in_albedo;
out vec3 v_position;
out vec3 v_normal;
out vec3 v_albedo;
void main() {
    vec3 p = in_position;
    // pixel u = fx x / z + cx has its centre at window coordinate u + 0.5; multiply NDC by w = z.
    float clip_x = 2.0 * (intrinsics.x * p.x + (intrinsics.z + 0.5) * p.z) / image_size.x - p.z;
    // no y flip: framebuffer row 0 (read back first) is image row v = 0.
    float clip_y = 2.0 * (intrinsics.y * p.y + (intrinsics.w + 0.5) * p.z) / image_size.y - p.z;
    float n = clip_range.x, f = clip_range.y;
    float clip_z = (f + n) / (f - n) * p.z - 2.0 * f * n / (f - n);
    gl_Position = vec4(clip_x, clip_y, clip_z, p.z);
    v_position = p;
    v_normal = in_normal;
    v_albedo = in_albedo;
}
"""

_FRAGMENT_SHADER = """
#version 330
uniform vec3 light_direction;  // unit vector from the surface towards the light, optical frame
uniform float light_intensity;
uniform float ambient;
in vec3 v_position;
in vec3 v_normal;
in vec3 v_albedo;
layout(location = 0) out vec4 out_colour;
layout(location = 1) out float out_depth;
void main() {
    vec3 n = normalize(v_normal);
    if (dot(n, -v_position) < 0.0) n = -n;  // shade whichever side faces the camera
    float shade = ambient + light_intensity * max(dot(n, light_direction), 0.0);
    out_colour = vec4(v_albedo * shade, 1.0);
    out_depth = v_position.z;
}
"""

_context = None


def get_context():
    """The process-wide moderngl EGL context (created on first call)."""
    global _context
    if _context is None:
        import moderngl

        try:
            _context = moderngl.create_standalone_context(backend="egl")
        except Exception as error:  # moderngl raises plain Exception when EGL is missing
            raise RuntimeError(
                "cannot create an EGL OpenGL context; install libegl1 libegl-mesa0 libgl1-mesa-dri libgbm1"
            ) from error
    return _context


@dataclass(frozen=True)
class Lighting:
    """Lambertian lighting: colour = albedo * (ambient + intensity * max(n . l, 0)); ``direction`` (3,) towards
    the light in the optical frame (normalised on use)."""

    direction: tuple[float, float, float] = (0.3, -0.5, -1.0)
    intensity: float = 0.7
    ambient: float = 0.35


@dataclass(frozen=True)
class RenderedView:
    """One rendered view: ``rgb`` (H, W, 3) float32 shaded colour in [0, ~1] (0 outside), ``depth_m`` (H, W)
    float32 z in metres (0 = no surface), ``mask`` (H, W) bool coverage."""

    rgb: np.ndarray
    depth_m: np.ndarray
    mask: np.ndarray


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals (V, 3) float32 of a mesh (V, 3) with triangles (F, 3)."""
    v = np.asarray(vertices, dtype=np.float32)
    tri = v[faces]
    a, b = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
    face_normals = (  # cross(a, b) written out: np.cross is several times slower
        a[:, 1] * b[:, 2] - a[:, 2] * b[:, 1],
        a[:, 2] * b[:, 0] - a[:, 0] * b[:, 2],
        a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0],
    )
    corners = np.asarray(faces, dtype=np.int64).reshape(-1)
    normals = np.stack([np.bincount(corners, np.repeat(n, 3), minlength=len(v)) for n in face_normals], axis=1)
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    return (normals / np.maximum(length, 1e-12)).astype(np.float32)


class MeshRenderer:
    """Renders a triangle mesh given in the optical frame through pinhole intrinsics at one or more sizes."""

    def __init__(self):
        self.ctx = get_context()
        self.program = self.ctx.program(vertex_shader=_VERTEX_SHADER, fragment_shader=_FRAGMENT_SHADER)
        self._framebuffers = {}
        self._vertex_buffer = None
        self._index_buffer = None
        self._vertex_array = None

    def _framebuffer(self, width: int, height: int):
        key = (width, height)
        if key not in self._framebuffers:
            colour = self.ctx.texture(key, 4, dtype="f4")
            depth = self.ctx.texture(key, 1, dtype="f4")
            self._framebuffers[key] = self.ctx.framebuffer(
                color_attachments=[colour, depth], depth_attachment=self.ctx.depth_renderbuffer(key)
            )
        return self._framebuffers[key]

    def _upload(self, vertices, faces, normals, albedo) -> None:
        interleaved = np.concatenate(
            [np.asarray(a, dtype=np.float32).reshape(-1, 3) for a in (vertices, normals, albedo)], axis=1
        )
        vertex_bytes = np.ascontiguousarray(interleaved).tobytes()
        index_bytes = np.ascontiguousarray(faces, dtype=np.uint32).tobytes()
        if self._vertex_buffer is None:
            self._vertex_buffer = self.ctx.buffer(reserve=len(vertex_bytes), dynamic=True)
            self._index_buffer = self.ctx.buffer(reserve=len(index_bytes), dynamic=True)
            self._vertex_array = self.ctx.vertex_array(
                self.program,
                [(self._vertex_buffer, "3f 3f 3f", "in_position", "in_normal", "in_albedo")],
                index_buffer=self._index_buffer,
                index_element_size=4,
            )
        for buffer, data in ((self._vertex_buffer, vertex_bytes), (self._index_buffer, index_bytes)):
            if buffer.size != len(data):
                buffer.orphan(len(data))
            buffer.write(data)

    def render(
        self,
        vertices: np.ndarray,
        faces: np.ndarray,
        views: list[tuple[np.ndarray, int, int]],
        albedo: np.ndarray | None = None,
        normals: np.ndarray | None = None,
        lighting: Lighting = Lighting(),
    ) -> list[RenderedView]:
        """Render one mesh through several cameras sharing the optical frame.

        vertices (V, 3) metres in the optical frame; faces (F, 3) vertex indices; views: (K (3, 3), width, height)
        per output; albedo (V, 3) in [0, 1] (default grey); normals (V, 3) (default area-weighted vertex normals).
        """
        import moderngl

        faces = np.asarray(faces)
        if albedo is None:
            albedo = np.full((len(vertices), 3), 0.7, np.float32)
        if normals is None:
            normals = vertex_normals(vertices, faces)
        self._upload(vertices, faces, normals, albedo)
        direction = np.asarray(lighting.direction, dtype=np.float64)
        self.program["light_direction"].value = tuple(direction / np.linalg.norm(direction))
        self.program["light_intensity"].value = float(lighting.intensity)
        self.program["ambient"].value = float(lighting.ambient)
        self.program["clip_range"].value = (NEAR_M, FAR_M)
        self.ctx.enable(moderngl.DEPTH_TEST)
        self.ctx.disable(moderngl.CULL_FACE)
        results = []
        for K, width, height in views:
            framebuffer = self._framebuffer(width, height)
            framebuffer.use()
            framebuffer.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
            K = np.asarray(K, dtype=np.float64)
            self.program["intrinsics"].value = (K[0, 0], K[1, 1], K[0, 2], K[1, 2])
            self.program["image_size"].value = (float(width), float(height))
            self._vertex_array.render(moderngl.TRIANGLES, vertices=faces.size)
            colour = np.frombuffer(framebuffer.read(components=4, attachment=0, dtype="f4"), np.float32)
            depth = np.frombuffer(framebuffer.read(components=1, attachment=1, dtype="f4"), np.float32)
            depth = depth.reshape(height, width).copy()
            results.append(RenderedView(colour.reshape(height, width, 4)[:, :, :3].copy(), depth, depth > 0))
        return results
