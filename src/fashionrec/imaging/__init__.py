"""Image bytes to pictures to model inputs: the one place that touches image bytes.

`formats` (what is accepted), `decode` (limits, slots, `open_image`), `preprocess` (a model's input), `look` (the
catalog's look a query is brought to) and `colour` (a product's colour from its pixels).

Everything that reaches a model passes through `open_image` (format check, pixel limit, decode, EXIF
rotation, any colour mode to RGB) and `preprocess` (resize and normalise as the model's `Preprocessing` says),
so an upload, a catalog file and a notebook's PIL image are treated exactly alike.

The rule for image bytes, and why:
- **Formats.** Only what shops publish product photos in is decoded: JPEG (also MPO, the JPEG a camera writes
  with a second picture inside; the first is used), PNG, WebP and GIF (what every browser shows and every shop
  platform serves), and AVIF (what image CDNs now serve, so a photo saved from a shop page is often AVIF; only
  where this Pillow decodes it). Everything else is refused before any decoder sees it, with a message naming
  what the file is and the formats accepted: EPS (Pillow would run Ghostscript on it), PSD, SVG, TIFF and camera
  RAW files, BMP, HEIC, PDF. An animated GIF, WebP, APNG or AVIF gives its first frame (a product spin starts on
  the product's front); the other frames are never decoded. `IMAGE_SUFFIXES`, what the indexer scans, are these
  formats' file name suffixes; a file with the suffix of a refused format is reported, never silently ignored.
- **Pixels.** The header's width x height is checked against a limit before a pixel is decoded. A JPEG decoded
  at reduced scale (`draft`: 1/2 to 1/8 in the decoder, cheap in time and memory) may have more pixels than an
  image decoded in full (every other format, and a JPEG when the model's recipe forbids reduced-scale decoding).
  Catalog files have one limit, `FASHIONREC_MAX_PIXELS`; query photos (uploads) have `PixelLimits.for_uploads`:
  16.8 M pixels (4096 x 4096) decoded in full, 40 M for a JPEG decoded at reduced scale. A 130 kB PNG can
  claim 6300 x 6300 pixels, 170 MB and a second of decoding: as an upload it is refused from its header.
- **Decode slots.** At most `FASHIONREC_DECODE_SLOTS` images (2) decode at once in a process, whichever thread
  asks (`DECODE_SLOTS`), so eight large uploads at once wait for each other instead of exhausting memory. With
  a draft size (what the model needs, doubled), any format comes out of its slot reduced by a whole factor, so
  full-size pixels never leave it.
- **Any failure while reading one image is an `ImageError`** (or its kinds `UnsupportedImageFormatError`,
  `ImageTooLargeError`), whatever a decoder raised, with what to do about it. Only the EXIF Orientation tag is
  read, the way browsers do: a damaged EXIF block elsewhere costs nothing (Pillow's `exif_transpose` would fail
  on it), and EXIF that cannot be read at all leaves the picture as stored, as a browser shows it.
- Colours are taken as stored (no ICC conversion), as the catalog's own images were.
"""
