/* Winograd F(2×2, 3×3) transforms for the backward pass of a 3×3, stride-1 convolution
   (minilab/ops/conv_winograd.py has the maths and the plan; this file only has the per-plane loops).

   1-D F(2,3) with the usual matrices (Lavin & Gray 2016):
       Bᵀ = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]    G = [1 0 0; ½ ½ ½; ½ -½ ½; 0 0 1]    Aᵀ = [1 1 1 0; 0 1 -1 -1]
   2-D transforms apply the 1-D one to the rows, then to the columns.  Tiles: output tile (i, j) is the 2×2 block
   at (2i, 2j); its input tile is the 4×4 block at (2i - p, 2j - p) of x, where cells outside x hold pad_value.
   A transformed tile is 16 numbers ξ = 4·row + column, and slab ξ of a tile matrix holds that number for every
   (channel, tile): element [ξ·slab + channel·T + tile]. */
#ifndef MINILAB_WINOGRAD_H
#define MINILAB_WINOGRAD_H
#include <stdint.h>

/* U = G w Gᵀ for the filters (o, 0..c) of one output channel: w is the (c, 3, 3) block, u[ξ·slab + ci].  The
   loop runs along the input channels, so each ξ is a contiguous run of stores. */
static void wino_filter_row(const float *w, int64_t c, float *u, int64_t slab) {
    for (int64_t ci = 0; ci < c; ci++) {
        const float *f = w + 9 * ci;
        float t[4][3];
        for (int l = 0; l < 3; l++) {  /* G along the rows of the filter */
            float g0 = f[l], g1 = f[3 + l], g2 = f[6 + l];
            t[0][l] = g0;
            t[1][l] = 0.5f * (g0 + g1 + g2);
            t[2][l] = 0.5f * (g0 - g1 + g2);
            t[3][l] = g2;
        }
        for (int k = 0; k < 4; k++) {  /* and along the columns */
            float g0 = t[k][0], g1 = t[k][1], g2 = t[k][2];
            u[(4 * k + 0) * slab + ci] = g0;
            u[(4 * k + 1) * slab + ci] = 0.5f * (g0 + g1 + g2);
            u[(4 * k + 2) * slab + ci] = 0.5f * (g0 - g1 + g2);
            u[(4 * k + 3) * slab + ci] = g2;
        }
    }
}

/* ∂w = Gᵀ M G for the filters (o, 0..c) of one output channel: M read as m[ξ·slab + ci], dw the (c, 3, 3) block. */
static void wino_filter_grad_row(const float *m, int64_t c, int64_t slab, float *dw) {
    for (int64_t ci = 0; ci < c; ci++) {
        float t[4][3];
        for (int k = 0; k < 4; k++) {  /* Gᵀ along the rows */
            float m0 = m[(4 * k + 0) * slab + ci], m1 = m[(4 * k + 1) * slab + ci];
            float m2 = m[(4 * k + 2) * slab + ci], m3 = m[(4 * k + 3) * slab + ci];
            t[k][0] = m0 + 0.5f * (m1 + m2);
            t[k][1] = 0.5f * (m1 - m2);
            t[k][2] = 0.5f * (m1 + m2) + m3;
        }
        float *f = dw + 9 * ci;
        for (int l = 0; l < 3; l++) {  /* and down the columns */
            f[0 * 3 + l] = t[0][l] + 0.5f * (t[1][l] + t[2][l]);
            f[1 * 3 + l] = 0.5f * (t[1][l] - t[2][l]);
            f[2 * 3 + l] = 0.5f * (t[1][l] + t[2][l]) + t[3][l];
        }
    }
}

/* Row r of x padded with `pad`, as its even and odd cells (padded column q = col + p goes to even[q / 2] or
   odd[q / 2]), for q < 2·half + 2; so a tile's columns 2j, 2j+1, 2j+2, 2j+3 are even[j], odd[j], even[j+1],
   odd[j+1] and every loop over tiles below is a unit-stride loop the compiler vectorises. */
static void wino_split_row(const float *x, int64_t h, int64_t w, int64_t r, int p, float pad, int64_t half,
                           float *even, float *odd) {
    for (int64_t q = 0; q <= half; q++)
        even[q] = odd[q] = pad;
    if (r < 0 || r >= h)
        return;
    for (int64_t col = 0; col < w; col++) {
        int64_t q = col + p;
        if ((q & 1) == 0)
            even[q >> 1] = x[r * w + col];
        else
            odd[q >> 1] = x[r * w + col];
    }
}

/* The unit-stride loops of the tile transforms, as functions with restrict arguments: GCC 12 vectorises them
   so, and did not when the same loops read their rows through arrays of pointers. */

/* Bᵀ down the columns: rows (d0, d1, d2, d3) become (d0 - d2, d1 + d2, d2 - d1, d1 - d3). */
static void wino_bt_columns(const float *restrict d0, const float *restrict d1, const float *restrict d2,
                            const float *restrict d3, float *restrict t0, float *restrict t1, float *restrict t2,
                            float *restrict t3, int64_t count) {
    for (int64_t q = 0; q < count; q++) {
        t0[q] = d0[q] - d2[q];
        t1[q] = d1[q] + d2[q];
        t2[q] = d2[q] - d1[q];
        t3[q] = d1[q] - d3[q];
    }
}

/* The same along the rows, for every tile j: its columns 2j, 2j+1, 2j+2, 2j+3 are e[j], o[j], e[j+1], o[j+1]. */
static void wino_bt_rows(const float *restrict e, const float *restrict o, float *restrict v0, float *restrict v1,
                         float *restrict v2, float *restrict v3, int64_t tw) {
    for (int64_t j = 0; j < tw; j++) {
        v0[j] = e[j] - e[j + 1];
        v1[j] = o[j] + e[j + 1];
        v2[j] = e[j + 1] - o[j];
        v3[j] = o[j] - o[j + 1];
    }
}

/* A along the rows of the 2-wide gradient tiles: columns (c0, c1) become (c0, c0 + c1, c0 - c1, -c1). */
static void wino_a_rows(const float *restrict c0, const float *restrict c1, float *restrict z0, float *restrict z1,
                        float *restrict z2, float *restrict z3, int64_t tw) {
    for (int64_t j = 0; j < tw; j++) {
        z0[j] = c0[j];
        z1[j] = c0[j] + c1[j];
        z2[j] = c0[j] - c1[j];
        z3[j] = -c1[j];
    }
}

/* B along the rows of transformed tiles: (n0, n1, n2, n3) become (n0, n1 - n2 + n3, n1 + n2 - n0, -n3);
   the same map down the columns, with the rows as inputs. */
static void wino_b_map(const float *restrict n0, const float *restrict n1, const float *restrict n2,
                       const float *restrict n3, float *restrict t0, float *restrict t1, float *restrict t2,
                       float *restrict t3, int64_t tw) {
    for (int64_t j = 0; j < tw; j++) {
        t0[j] = n0[j];
        t1[j] = n1[j] - n2[j] + n3[j];
        t2[j] = n1[j] + n2[j] - n0[j];
        t3[j] = -n3[j];
    }
}

/* V = Bᵀ d B for every input tile of one (h × w) plane: v[ξ·slab + i·tw + j].  `rows` is scratch for
   16·(tw + 1) floats. */
static void wino_input_plane(const float *x, int64_t h, int64_t w, int p, float pad, int64_t th, int64_t tw,
                             float *v, int64_t slab, float *rows) {
    int64_t n1 = tw + 1;
    float *e[4], *o[4], *te[4], *to[4];
    for (int k = 0; k < 4; k++) {
        e[k] = rows + (2 * k) * n1;
        o[k] = rows + (2 * k + 1) * n1;
        te[k] = rows + (8 + 2 * k) * n1;
        to[k] = rows + (9 + 2 * k) * n1;
    }
    for (int64_t i = 0; i < th; i++) {
        for (int k = 0; k < 4; k++)
            wino_split_row(x, h, w, 2 * i - p + k, p, pad, tw, e[k], o[k]);
        wino_bt_columns(e[0], e[1], e[2], e[3], te[0], te[1], te[2], te[3], n1);
        wino_bt_columns(o[0], o[1], o[2], o[3], to[0], to[1], to[2], to[3], n1);
        for (int k = 0; k < 4; k++) {
            float *out = v + 4 * k * slab + i * tw;
            wino_bt_rows(te[k], to[k], out, out + slab, out + 2 * slab, out + 3 * slab, tw);
        }
    }
}

/* Z = A ∂y Aᵀ for every 2×2 output-gradient tile of one (oh × ow) plane (zero beyond the plane):
   z[ξ·slab + i·tw + j].  `rows` is scratch for 16·(tw + 1) floats. */
static void wino_grad_plane(const float *g, int64_t oh, int64_t ow, int64_t th, int64_t tw, float *z, int64_t slab,
                            float *rows) {
    int64_t n1 = tw + 1;
    float *e0 = rows, *o0 = rows + n1, *e1 = rows + 2 * n1, *o1 = rows + 3 * n1;
    float *ce[4], *co[4];  /* A down the columns: rows (d0, d1) become (d0, d0 + d1, d0 - d1, -d1) */
    for (int k = 0; k < 4; k++) {
        ce[k] = rows + (4 + 2 * k) * n1;
        co[k] = rows + (5 + 2 * k) * n1;
    }
    for (int64_t i = 0; i < th; i++) {
        wino_split_row(g, oh, ow, 2 * i, 0, 0.0f, tw, e0, o0);
        wino_split_row(g, oh, ow, 2 * i + 1, 0, 0.0f, tw, e1, o1);
        wino_a_rows(e0, e1, ce[0], ce[1], ce[2], ce[3], tw);  /* the same map, rows in, rows out */
        wino_a_rows(o0, o1, co[0], co[1], co[2], co[3], tw);
        for (int k = 0; k < 4; k++) {
            float *out = z + 4 * k * slab + i * tw;
            wino_a_rows(ce[k], co[k], out, out + slab, out + 2 * slab, out + 3 * slab, tw);
        }
    }
}

/* ∂x += B N Bᵀ for every tile of one plane, tiles overlapping by two cells; cells in the padding are dropped.
   n[ξ·slab + i·tw + j];  `rows` is scratch for 34·(tw + 1) floats. */
static void wino_input_grad_plane(const float *n, int64_t slab, int64_t th, int64_t tw, int64_t h, int64_t w,
                                  int p, float *dx, float *rows) {
    int64_t n1 = tw + 1;
    float *t[4][4], *d[4][4], *even = rows + 32 * n1, *odd = rows + 33 * n1;
    for (int k = 0; k < 4; k++)
        for (int l = 0; l < 4; l++) {
            t[k][l] = rows + (4 * k + l) * n1;
            d[k][l] = rows + (16 + 4 * k + l) * n1;
        }
    for (int64_t i = 0; i < th; i++) {
        for (int k = 0; k < 4; k++) {  /* B along the rows of each transformed tile: t[k][l][j] */
            const float *in = n + 4 * k * slab + i * tw;
            wino_b_map(in, in + slab, in + 2 * slab, in + 3 * slab, t[k][0], t[k][1], t[k][2], t[k][3], tw);
        }
        for (int l = 0; l < 4; l++)  /* and down the columns: d[kr][l][j] is row kr, column l of tile j */
            wino_b_map(t[0][l], t[1][l], t[2][l], t[3][l], d[0][l], d[1][l], d[2][l], d[3][l], tw);
        for (int kr = 0; kr < 4; kr++) {
            int64_t r = 2 * i - p + kr;
            if (r < 0 || r >= h)
                continue;
            /* padded cell 2j (2j + 1) is column 0 (1) of tile j plus column 2 (3) of tile j - 1 */
            float *const *dk = d[kr];
            even[0] = dk[0][0];
            odd[0] = dk[1][0];
            for (int64_t j = 1; j < tw; j++) {
                even[j] = dk[0][j] + dk[2][j - 1];
                odd[j] = dk[1][j] + dk[3][j - 1];
            }
            even[tw] = dk[2][tw - 1];
            odd[tw] = dk[3][tw - 1];
            float *dr = dx + r * w;
            for (int64_t col = 0; col < w; col++) {  /* 2·tw + 2 >= w + 2p, so cell col + p exists */
                int64_t q = col + p;
                dr[col] += (q & 1) ? odd[q >> 1] : even[q >> 1];
            }
        }
    }
}
#endif
