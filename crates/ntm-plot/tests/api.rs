//! Public-API tests: error cases, file output and SVG content.

use ntm_plot::{Figure, LineChart, Panel, PlotError, Series};

fn path_d_attrs(svg: &str) -> Vec<&str> {
    svg.match_indices("<path d=\"")
        .map(|(i, m)| {
            let rest = &svg[i + m.len()..];
            &rest[..rest.find('"').expect("closing quote")]
        })
        .collect()
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
    assert!(matches!(fig.save_png(&missing), Err(PlotError::Io(_))));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn svg_has_one_path_per_series_and_a_legend() {
    let svg = two_series_chart().to_svg().unwrap();
    assert!(svg.starts_with("<?xml"));
    assert!(svg.contains(r#"xmlns="http://www.w3.org/2000/svg""#));
    assert_eq!(path_d_attrs(&svg).len(), 2);
    assert_eq!(svg.matches("<polygon").count(), 1, "one band");
    assert!(svg.contains(">lstm</text>") && svg.contains(">ntm</text>"));
    // Distinct colours per series.
    let d = path_d_attrs(&svg);
    assert_eq!(d[0].matches('L').count(), 10);
    assert_eq!(d[1].matches('L').count(), 2);
    let strokes: Vec<&str> = svg
        .lines()
        .filter(|l| l.starts_with("<path"))
        .map(|l| {
            l.split("stroke=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap()
        })
        .collect();
    assert_eq!(strokes.len(), 2);
    assert_ne!(strokes[0], strokes[1]);
}

#[test]
fn svg_tick_labels_are_round_and_compact() {
    let svg = two_series_chart().to_svg().unwrap();
    for label in [">0<", ">200<", ">800<", ">1k<"] {
        assert!(svg.contains(label), "missing x tick {label}");
    }
    assert!(!svg.contains(">1000<"));

    let mut big = LineChart::new("t", "x", "y");
    big.series
        .push(Series::new("s", vec![(0.0, 0.0), (1_200_000.0, 0.25)]));
    let svg = big.to_svg().unwrap();
    for label in [">250k<", ">1M<", ">1.25M<", ">0.05<", ">0.25<"] {
        assert!(svg.contains(label), "missing tick {label}");
    }
}

#[test]
fn svg_escapes_xml_in_text() {
    let mut chart = LineChart::new("a & b", "x <steps>", "y");
    chart
        .series
        .push(Series::new("<&> \"q\"", vec![(0.0, 1.0), (1.0, 2.0)]));
    let svg = chart.to_svg().unwrap();
    assert!(svg.contains("&lt;&amp;&gt; &quot;q&quot;"));
    assert!(svg.contains("a &amp; b") && svg.contains("x &lt;steps&gt;"));
    assert!(!svg.contains("<&>"));
    assert!(!svg.contains("<steps>"));
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
    let d = path_d_attrs(&svg);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].matches('L').count(), 1);
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
    let d = path_d_attrs(&svg);
    assert_eq!(d[0].matches('L').count(), 2, "3 positive points remain");
    for label in [">0.01<", ">0.1<", ">1<", ">10<", ">100<"] {
        assert!(svg.contains(label), "missing log tick {label}");
    }

    chart.log_y = false;
    let linear = chart.to_svg().unwrap();
    assert_eq!(path_d_attrs(&linear)[0].matches('L').count(), 4);
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
    assert_eq!(path_d_attrs(&svg).len(), 1);
    assert!(svg.contains("<circle"));
    assert!(!svg.contains("NaN"));

    let mut chart = LineChart::new("t", "x", "y");
    chart.series.push(Series::new(
        "extreme",
        vec![(-f64::MAX, -f64::MAX), (f64::MAX, f64::MAX)],
    ));
    let svg = chart.to_svg().unwrap();
    assert!(!svg.contains("NaN") && !svg.contains("inf"));
}
