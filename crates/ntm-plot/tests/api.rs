//! Public-API tests: error cases, file output, PNG dimensions and SVG content.

use ntm_plot::{Figure, LineChart, Panel, PlotError, Series, CHART_HEIGHT, CHART_WIDTH};

/// The text content of every `<text>` element, trimmed.
fn texts(svg: &str) -> Vec<&str> {
    svg.split("<text ")
        .skip(1)
        .map(|rest| {
            let body = &rest[rest.find('>').expect("end of tag") + 1..];
            body[..body.find("</text>").expect("closing tag")].trim()
        })
        .collect()
}

/// `(stroke colour, number of points)` of every 2-pixel-wide polyline:
/// the drawn series and the legend's line samples.
fn lines(svg: &str) -> Vec<(&str, usize)> {
    svg.split("<polyline ")
        .skip(1)
        .map(|rest| &rest[..rest.find("/>").expect("end of tag")])
        .filter(|tag| tag.contains(r#"stroke-width="2""#))
        .map(|tag| {
            (
                attr(tag, "stroke"),
                attr(tag, "points").split_whitespace().count(),
            )
        })
        .collect()
}

fn attr<'a>(tag: &'a str, name: &str) -> &'a str {
    let key = format!(" {name}=\"");
    let start = tag.find(&key).map(|i| i + key.len()).expect("attribute");
    &tag[start..start + tag[start..].find('"').expect("closing quote")]
}

/// Width and height from a PNG's IHDR chunk.
fn png_size(png: &[u8]) -> (u32, u32) {
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
    assert_eq!(&png[12..16], b"IHDR");
    let be = |i: usize| u32::from_be_bytes([png[i], png[i + 1], png[i + 2], png[i + 3]]);
    (be(16), be(20))
}

fn two_series_chart() -> LineChart {
    let mut chart = LineChart::new("cost", "sequences", "bits");
    chart.series.push(Series::new(
        "lstm",
        (0..=10)
            .map(|i| (i as f64 * 100.0, 10.0 - i as f64))
            .collect(),
    ));
    chart.series.push(
        Series::new("ntm", vec![(0.0, 8.0), (500.0, 3.0), (1000.0, 0.5)]).with_band(vec![
            (0.0, 7.0, 9.0),
            (500.0, 2.0, 4.0),
            (1000.0, 0.1, 1.0),
        ]),
    );
    chart
}

/// The panels `ntm show` draws for a copy sequence of length 40.
fn copy_figure() -> Figure {
    let steps = 82;
    let channels = |title: &str, rows: usize| {
        let values = (0..rows * steps)
            .map(|i| ((i * 7919) % 13) as f32 / 12.0)
            .collect();
        Panel::new(title, rows, steps, values).with_range(0.0, 1.0)
    };
    let weighting = |title: &str, shift: usize| {
        let per_step: Vec<Vec<f32>> = (0..steps)
            .map(|t| {
                (0..128)
                    .map(|i| {
                        if i == (t + shift) % 128 {
                            0.9
                        } else {
                            0.1 / 127.0
                        }
                    })
                    .collect()
            })
            .collect();
        Panel::from_time_major(title, &per_step)
            .unwrap()
            .with_range(0.0, 1.0)
    };
    Figure::new(vec![
        channels("copy: inputs", 9),
        channels("targets", 8),
        channels("outputs", 8),
        weighting("write weightings, head 0", 0),
        weighting("read weightings, head 0", 3),
    ])
}

#[test]
fn shape_mismatch_is_reported_with_details() {
    let fig = Figure::new(vec![Panel::new("outputs", 2, 3, vec![0.0; 5])]);
    match fig.render_png() {
        Err(PlotError::ShapeMismatch {
            panel,
            expected,
            got,
        }) => {
            assert_eq!(panel, "outputs");
            assert_eq!((expected, got), (6, 5));
        }
        other => panic!("expected ShapeMismatch, got {other:?}"),
    }
}

#[test]
fn empty_figure_and_empty_panel_are_errors() {
    assert!(matches!(
        Figure::new(vec![]).render_png(),
        Err(PlotError::Empty { .. })
    ));
    let fig = Figure::new(vec![Panel::new("none", 0, 4, vec![])]);
    match fig.render_png() {
        Err(PlotError::Empty { what }) => assert!(what.contains("none"), "{what}"),
        other => panic!("expected Empty, got {other:?}"),
    }
}

#[test]
fn nan_and_infinity_are_rejected_with_position() {
    let mut values = vec![0.0; 6];
    values[4] = f32::NAN;
    let fig = Figure::new(vec![Panel::new("reads", 2, 3, values)]);
    match fig.render_png() {
        Err(PlotError::NonFinite {
            panel, row, col, ..
        }) => {
            assert_eq!(panel, "reads");
            assert_eq!((row, col), (1, 1));
        }
        other => panic!("expected NonFinite, got {other:?}"),
    }
    let fig = Figure::new(vec![Panel::new("inf", 1, 2, vec![0.0, f32::INFINITY])]);
    assert!(matches!(
        fig.render_png(),
        Err(PlotError::NonFinite { col: 1, .. })
    ));
}

#[test]
fn bad_colour_range_is_rejected() {
    for (lo, hi) in [(1.0, 1.0), (1.0, 0.0), (f32::NAN, 1.0)] {
        let fig = Figure::new(vec![Panel::new("w", 1, 1, vec![0.5]).with_range(lo, hi)]);
        assert!(
            matches!(fig.render_png(), Err(PlotError::InvalidRange { .. })),
            "range {lo}..{hi} accepted"
        );
    }
}

#[test]
fn time_major_panels_are_transposed() {
    let p = Panel::from_time_major("w", &[vec![1.0, 2.0, 3.0], vec![4.0, 5.0, 6.0]]).unwrap();
    assert_eq!((p.rows, p.cols), (3, 2));
    assert_eq!(p.values, vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    let err = Panel::from_time_major("ragged", &[vec![1.0, 2.0], vec![3.0]]).unwrap_err();
    assert!(matches!(
        err,
        PlotError::ShapeMismatch {
            expected: 4,
            got: 3,
            ..
        }
    ));
}

#[test]
fn error_messages_name_the_panel() {
    let err = Figure::new(vec![Panel::new("targets", 1, 2, vec![0.0])])
        .render_png()
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("targets") && msg.contains('2') && msg.contains('1'),
        "{msg}"
    );
}

#[test]
fn weighting_figure_is_a_png_of_the_expected_size() {
    let fig = copy_figure();
    let png = fig.render_png().unwrap();
    let (w, h) = png_size(&png);
    // 82 steps of 6 pixels plus the row labels; 281 rows of 6 pixels plus
    // five title bands and tick-label bands.
    assert!((82 * 6 + 40..82 * 6 + 120).contains(&w), "width {w}");
    assert!(
        (281 * 6 + 5 * 40..=281 * 6 + 5 * 60).contains(&h),
        "height {h}"
    );
    // Rendering needs no system font and is deterministic.
    assert_eq!(png, fig.render_png().unwrap());
}

#[test]
fn files_are_written() {
    let dir = std::env::temp_dir().join(format!("ntm-plot-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let png_path = dir.join("fig.png");
    let fig = Figure::new(vec![Panel::new("a", 1, 2, vec![0.0, 1.0])]);
    fig.save_png(&png_path).unwrap();
    assert_eq!(std::fs::read(&png_path).unwrap(), fig.render_png().unwrap());

    let svg_path = dir.join("chart.svg");
    two_series_chart().save_svg(&svg_path).unwrap();
    assert!(std::fs::read_to_string(&svg_path)
        .unwrap()
        .ends_with("</svg>\n"));

    let missing = dir.join("no-such-dir").join("fig.png");
    assert!(matches!(fig.save_png(&missing), Err(PlotError::Io { .. })));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn svg_has_titles_a_line_per_series_and_a_legend() {
    let svg = two_series_chart().to_svg().unwrap();
    assert!(svg.starts_with("<?xml"));
    assert!(svg.contains(r#"xmlns="http://www.w3.org/2000/svg""#));
    assert!(svg.contains(&format!(r#"width="{CHART_WIDTH}" height="{CHART_HEIGHT}""#)));
    assert!(svg.contains(r#"font-family="DejaVu Sans, sans-serif""#));

    let t = texts(&svg);
    for label in ["cost", "sequences", "bits", "lstm", "ntm"] {
        assert_eq!(
            t.iter().filter(|s| **s == label).count(),
            1,
            "{label} in {t:?}"
        );
    }
    // The y axis title is turned to run upwards.
    let y_title = svg
        .split("<text ")
        .find(|s| s.contains(">\nbits\n"))
        .unwrap();
    assert!(y_title.contains("rotate(270"), "{y_title}");

    // Two data lines (11 and 3 points) and a two-point sample per legend entry.
    let l = lines(&svg);
    let data: Vec<_> = l.iter().filter(|(_, n)| *n > 2).collect();
    assert_eq!(data.iter().map(|(_, n)| *n).collect::<Vec<_>>(), [11, 3]);
    assert_ne!(data[0].0, data[1].0, "distinct colours per series");
    for (colour, _) in &data {
        assert!(
            l.iter().any(|(c, n)| c == colour && *n == 2),
            "legend sample in {colour}"
        );
    }
    // One translucent band, and its legend swatch.
    assert_eq!(svg.matches("<polygon").count(), 1, "one band");
    let band = &svg[svg.find("<polygon").unwrap()..];
    assert!(band.contains(r#"opacity="0.2""#) && band.contains(data[1].0));
    let swatches = svg
        .split("<rect ")
        .skip(1)
        .map(|rest| &rest[..rest.find("/>").expect("end of tag")])
        .filter(|tag| attr(tag, "opacity") == "0.2" && attr(tag, "fill") == data[1].0)
        .count();
    assert_eq!(
        swatches, 1,
        "the banded series' legend entry shows the band"
    );
}

#[test]
fn svg_tick_labels_are_round_and_compact() {
    let svg = two_series_chart().to_svg().unwrap();
    let t = texts(&svg);
    for label in ["0", "200", "800", "1k", "2", "10"] {
        assert!(t.contains(&label), "missing tick {label} in {t:?}");
    }
    assert!(!t.contains(&"1000"));

    let mut big = LineChart::new("t", "x", "y");
    big.series
        .push(Series::new("s", vec![(0.0, 0.0), (1_200_000.0, 0.25)]));
    let svg = big.to_svg().unwrap();
    let t = texts(&svg);
    for label in ["200k", "1M", "1.2M", "0.05", "0.25"] {
        assert!(t.contains(&label), "missing tick {label} in {t:?}");
    }
}

#[test]
fn svg_escapes_xml_and_drops_control_characters() {
    let mut chart = LineChart::new("a & b", "x <steps>", "y\u{0}\u{7}");
    chart
        .series
        .push(Series::new("<&> \"q\"", vec![(0.0, 1.0), (1.0, 2.0)]));
    let svg = chart.to_svg().unwrap();
    assert!(svg.contains("&lt;&amp;&gt; &quot;q&quot;"));
    assert!(svg.contains("a &amp; b") && svg.contains("x &lt;steps&gt;"));
    assert!(!svg.contains("<&>"));
    assert!(!svg.contains("<steps>"));
    assert!(!svg.contains('\u{0}') && !svg.contains('\u{7}'));
    assert!(texts(&svg).contains(&"y"));
}

#[test]
fn svg_skips_non_finite_points() {
    let mut chart = LineChart::new("t", "x", "y");
    chart.series.push(Series::new(
        "s",
        vec![
            (0.0, 1.0),
            (1.0, f64::NAN),
            (f64::INFINITY, 2.0),
            (3.0, 4.0),
        ],
    ));
    let svg = chart.to_svg().unwrap();
    let l = lines(&svg);
    assert_eq!(l.len(), 2, "the line and its legend sample");
    assert!(l.iter().all(|(_, n)| *n == 2));
    assert!(!svg.contains("NaN") && !svg.contains("inf"));
}

#[test]
fn log_y_drops_non_positive_points_and_labels_decades() {
    let points = vec![
        (0.0, 1.0),
        (1.0, 0.0),
        (2.0, -3.0),
        (3.0, 0.01),
        (4.0, 100.0),
    ];
    let mut chart = LineChart::new("t", "x", "y");
    chart.series.push(Series::new("s", points.clone()));
    chart.log_y = true;
    let svg = chart.to_svg().unwrap();
    assert_eq!(lines(&svg)[0].1, 3, "3 positive points remain");
    let t = texts(&svg);
    for label in ["0.01", "0.1", "1", "10", "100"] {
        assert!(t.contains(&label), "missing log tick {label} in {t:?}");
    }

    chart.log_y = false;
    let linear = chart.to_svg().unwrap();
    assert_eq!(lines(&linear)[0].1, 5);
    assert!(!texts(&linear).contains(&"0.01"));
}

#[test]
fn charts_without_drawable_points_are_empty_errors() {
    assert!(matches!(
        LineChart::new("t", "x", "y").to_svg(),
        Err(PlotError::Empty { .. })
    ));
    let mut chart = LineChart::new("t", "x", "y");
    chart
        .series
        .push(Series::new("s", vec![(0.0, 0.0), (1.0, -1.0)]));
    assert!(chart.to_svg().is_ok());
    chart.log_y = true;
    assert!(matches!(chart.to_svg(), Err(PlotError::Empty { .. })));
}

#[test]
fn degenerate_ranges_still_render() {
    let mut chart = LineChart::new("t", "x", "y");
    chart
        .series
        .push(Series::new("one point", vec![(5.0, 5.0)]));
    let svg = chart.to_svg().unwrap();
    assert!(svg.contains("<circle"), "a lone point is drawn as a dot");
    assert!(texts(&svg).contains(&"one point"));
    assert!(!svg.contains("NaN"));

    let mut chart = LineChart::new("t", "x", "y");
    chart.series.push(Series::new(
        "extreme",
        vec![(-f64::MAX, -f64::MAX), (f64::MAX, f64::MAX)],
    ));
    let svg = chart.to_svg().unwrap();
    assert!(!svg.contains("NaN") && !svg.contains("inf"));
    assert_eq!(lines(&svg)[0].1, 2);

    // Hundreds of decades on a log axis, down to a subnormal number.
    chart.series[0].points = vec![(0.0, 5e-324), (1.0, 1e-300), (2.0, f64::MAX)];
    chart.log_y = true;
    let svg = chart.to_svg().unwrap();
    assert!(!svg.contains("NaN") && !svg.contains("inf"));
    assert_eq!(lines(&svg)[0].1, 3);
}
