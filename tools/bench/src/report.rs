//! The one table `make bench` prints: metric | value | target | baseline | ratio | status |
//! note. Ratio is value/target, or value/baseline where the target is relative.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    Miss,
    /// Reported, no target.
    Info,
}

pub struct Row {
    pub metric: String,
    pub value: String,
    pub target: String,
    pub baseline: String,
    pub ratio: Option<f64>,
    pub status: Status,
    pub note: String,
}

impl Row {
    pub fn info(metric: impl Into<String>, value: String, note: String) -> Self {
        Self {
            metric: metric.into(),
            value,
            target: "report".into(),
            baseline: "-".into(),
            ratio: None,
            status: Status::Info,
            note,
        }
    }

    /// A target relative to the baseline: `ratio` = value/baseline, at most `limit`.
    pub fn relative(
        metric: impl Into<String>,
        value: String,
        target: String,
        baseline: String,
        ratio: f64,
        limit: f64,
        note: String,
    ) -> Self {
        Self {
            metric: metric.into(),
            value,
            target,
            baseline,
            ratio: Some(ratio),
            status: if ratio <= limit {
                Status::Ok
            } else {
                Status::Miss
            },
            note,
        }
    }

    /// An absolute upper bound: ratio = value/limit, at most 1.
    pub fn absolute(
        metric: impl Into<String>,
        value: String,
        target: String,
        baseline: String,
        measured: f64,
        limit: f64,
        note: String,
    ) -> Self {
        Self::relative(metric, value, target, baseline, measured / limit, 1.0, note)
    }

    /// A count with an upper bound (a bound of 0 has no ratio).
    pub fn count(
        metric: impl Into<String>,
        value: String,
        measured: usize,
        limit: usize,
        note: String,
    ) -> Self {
        Self {
            metric: metric.into(),
            value,
            target: if limit == 0 {
                "0".into()
            } else {
                format!("<= {limit}")
            },
            baseline: "-".into(),
            ratio: (limit > 0).then(|| measured as f64 / limit as f64),
            status: if measured <= limit {
                Status::Ok
            } else {
                Status::Miss
            },
            note,
        }
    }
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

pub fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

pub fn print(rows: &[Row]) {
    let header = [
        "metric", "value", "target", "baseline", "ratio", "status", "note",
    ];
    let cells: Vec<[String; 7]> = rows
        .iter()
        .map(|r| {
            [
                r.metric.clone(),
                r.value.clone(),
                r.target.clone(),
                r.baseline.clone(),
                r.ratio.map_or("-".into(), |x| format!("{x:.2}")),
                match r.status {
                    Status::Ok => "ok".into(),
                    Status::Miss => "MISS".into(),
                    Status::Info => "-".into(),
                },
                r.note.clone(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |row: &[String]| {
        let text: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        println!("| {} |", text.join(" | "));
    };
    line(&header.map(String::from));
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    println!("|-{}-|", rule.join("-|-"));
    for row in &cells {
        line(row);
    }
    let missed = rows.iter().filter(|r| r.status == Status::Miss).count();
    println!(
        "{missed} of {} targeted rows MISS",
        rows.iter().filter(|r| r.status != Status::Info).count()
    );
}
