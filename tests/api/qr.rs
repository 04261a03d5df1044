//! QR codes: scannable (decoded with a real QR decoder), brand-coloured, named as the spec says.

use reqwest::StatusCode;
use reqwest::header::{CONTENT_DISPOSITION, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use serde_json::json;

use crate::common::TestDb;
use crate::helpers::{Tenant, TestApp, error_code};
use crate::on_both_backends;

/// A decoded PNG: width, height and RGB pixels.
struct Image {
    width: usize,
    height: usize,
    rgb: Vec<[u8; 3]>,
}

fn decode_png(bytes: &[u8]) -> Image {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::EXPAND);
    let mut reader = decoder.read_info().expect("png header");
    let mut buf = vec![0; reader.output_buffer_size().expect("buffer size")];
    let info = reader.next_frame(&mut buf).expect("png frame");
    let channels = info.color_type.samples();
    let rgb = buf[..info.buffer_size()]
        .chunks(channels)
        .map(|p| {
            if channels >= 3 {
                [p[0], p[1], p[2]]
            } else {
                [p[0], p[0], p[0]]
            }
        })
        .collect();
    Image {
        width: info.width as usize,
        height: info.height as usize,
        rgb,
    }
}

/// What a phone camera would read from the image.
fn scan(image: &Image) -> String {
    let mut prepared =
        rqrr::PreparedImage::prepare_from_greyscale(image.width, image.height, |x, y| {
            let [r, g, b] = image.rgb[y * image.width + x];
            ((u32::from(r) * 299 + u32::from(g) * 587 + u32::from(b) * 114) / 1000) as u8
        });
    let grids = prepared.detect_grids();
    assert_eq!(grids.len(), 1, "exactly one QR code in the image");
    grids[0].decode().expect("decodes").1
}

async fn download(org: &Tenant<'_>, path: &str) -> reqwest::Response {
    org.app
        .client
        .get(format!("{}{path}", org.app.base))
        .bearer_auth(&org.key)
        .send()
        .await
        .unwrap()
}

async fn a_source_created_with_generate_qr_downloads_a_png_that_scans_to_its_tracking_url(
    db: TestDb,
) {
    let app = TestApp::spawn(db).await;
    let org = app.create_org("starter").await;
    let (_, s) = org
        .post(
            "/api/v1/widgets/01/sources",
            json!({"name": "Facebook Ads", "channel_category": "paid_social", "generate_qr": true}),
        )
        .await;
    assert_eq!(s["qr_generated"], true);
    let res = download(&org, "/api/v1/widgets/01/sources/02/qr.png").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[CONTENT_TYPE], "image/png");
    let image = decode_png(&res.bytes().await.unwrap());
    assert_eq!((image.width, image.height), (1024, 1024));
    assert_eq!(scan(&image), s["tracking_url"].as_str().unwrap());
}

async fn dark_modules_are_the_brand_colour_on_white_with_a_quiet_zone(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let org = app.create_org("starter").await;
    org.patch("/api/v1/organization", json!({"brand_color": "#0B5394"}))
        .await;
    org.create_source("01", "Yard Signs", "print_outdoor").await;
    org.post_empty("/api/v1/widgets/01/sources/02/qr").await;
    let res = download(&org, "/api/v1/widgets/01/sources/02/qr.png?size=512").await;
    let image = decode_png(&res.bytes().await.unwrap());
    let colours: std::collections::BTreeSet<[u8; 3]> = image.rgb.iter().copied().collect();
    assert_eq!(
        colours,
        [[0x0B, 0x53, 0x94], [255, 255, 255]].into_iter().collect()
    );
    // The first dark pixel on the diagonal is the finder pattern's corner; everything before it
    // is quiet zone, at least 4 modules wide.
    let first_dark = (0..image.width)
        .find(|&i| image.rgb[i * image.width + i] != [255, 255, 255])
        .unwrap();
    let modules = {
        let row = first_dark * image.width;
        let run = (first_dark..image.width)
            .take_while(|&x| image.rgb[row + x] != [255, 255, 255])
            .count();
        run / 7 // the finder's top edge is 7 modules wide
    };
    assert!(
        first_dark >= 4 * modules,
        "quiet zone {first_dark}px < 4 modules of {modules}px"
    );
    assert_eq!(
        scan(&image),
        org.get("/api/v1/widgets/01/sources").await.1[1]["tracking_url"]
            .as_str()
            .unwrap()
    );
}

async fn the_svg_encodes_the_same_url_in_the_brand_colour(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let org = app.create_org("starter").await;
    org.create_source("01", "Mailer", "direct_mail").await;
    org.post_empty("/api/v1/widgets/01/sources/02/qr").await;
    let res = download(&org, "/api/v1/widgets/01/sources/02/qr.svg").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[CONTENT_TYPE], "image/svg+xml");
    let svg = res.text().await.unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("fill=\"#1A73E8\""));
    // Rasterise the path (runs of `M x y h n v1 h-n z`) at 8 px per module and scan it.
    let total: usize = svg
        .split("viewBox=\"0 0 ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let d = svg
        .split(" d=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let scale = 8;
    let side = total * scale;
    let mut rgb = vec![[255u8; 3]; side * side];
    for run in d.split('M').filter(|r| !r.is_empty()) {
        let (xy, rest) = run.split_once('h').unwrap();
        let (x, y) = xy.split_once(' ').unwrap();
        let (x, y): (usize, usize) = (x.parse().unwrap(), y.parse().unwrap());
        let n: usize = rest.split('v').next().unwrap().parse().unwrap();
        for py in y * scale..(y + 1) * scale {
            for px in x * scale..(x + n) * scale {
                rgb[py * side + px] = [0, 0, 0];
            }
        }
    }
    let (_, list) = org.get("/api/v1/widgets/01/sources").await;
    assert_eq!(
        scan(&Image {
            width: side,
            height: side,
            rgb
        }),
        list[1]["tracking_url"].as_str().unwrap()
    );
}

async fn download_file_names_follow_the_spec_and_keep_accents_and_emoji(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let org = app.create_org("starter").await;
    org.patch("/api/v1/organization", json!({"name": "Spark360"}))
        .await;
    let cases = [
        ("Facebook Ads", "Spark360-Facebook-Ads-v01-s02-QR.png"),
        ("Yard / Sign #3", "Spark360-Yard-Sign-3-v01-s03-QR.png"),
        ("Café Déjà 🏠", "Spark360-Café-Déjà-🏠-v01-s04-QR.png"),
    ];
    for (i, (name, expected)) in cases.iter().enumerate() {
        org.post(
            "/api/v1/widgets/01/sources",
            json!({"name": name, "channel_category": "other", "generate_qr": true}),
        )
        .await;
        let res = download(
            &org,
            &format!("/api/v1/widgets/01/sources/{:02}/qr.png", i + 2),
        )
        .await;
        let disposition = res.headers()[CONTENT_DISPOSITION]
            .to_str()
            .unwrap()
            .to_owned();
        let encoded: String =
            percent_encoding::utf8_percent_encode(expected, percent_encoding::NON_ALPHANUMERIC)
                .to_string();
        assert!(
            disposition.starts_with("attachment; filename=\""),
            "{disposition}"
        );
        assert!(
            disposition.ends_with(&format!("filename*=UTF-8''{encoded}")),
            "{disposition} vs {expected}"
        );
        if expected.is_ascii() {
            assert!(
                disposition.contains(&format!("filename=\"{expected}\"")),
                "{disposition}"
            );
        }
    }
}

async fn png_size_must_be_between_256_and_4096(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let org = app.create_org("starter").await;
    org.post(
        "/api/v1/widgets/01/sources",
        json!({"name": "A", "channel_category": "other", "generate_qr": true}),
    )
    .await;
    for (size, ok) in [(255, false), (256, true), (4096, true), (4097, false)] {
        let res = download(
            &org,
            &format!("/api/v1/widgets/01/sources/02/qr.png?size={size}"),
        )
        .await;
        if ok {
            assert_eq!(res.status(), StatusCode::OK);
            let image = decode_png(&res.bytes().await.unwrap());
            assert_eq!(image.width, size);
        } else {
            assert_eq!(
                res.status(),
                StatusCode::UNPROCESSABLE_ENTITY,
                "size {size}"
            );
        }
    }
    let res = download(&org, "/api/v1/widgets/01/sources/02/qr.png?size=big").await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
}

async fn downloads_before_generation_are_404_and_the_system_source_has_none(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let org = app.create_org("starter").await;
    org.create_source("01", "Later", "other").await;
    let res = download(&org, "/api/v1/widgets/01/sources/02/qr.png").await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(error_code(&body), "qr_not_generated");
    let (status, err) = org.post_empty("/api/v1/widgets/01/sources/01/qr").await;
    assert_eq!(
        (status, error_code(&err)),
        (StatusCode::CONFLICT, "system_source_has_no_qr")
    );
    let (status, s) = org.post_empty("/api/v1/widgets/01/sources/02/qr").await;
    assert_eq!(
        (status, s["qr_generated"].as_bool()),
        (StatusCode::OK, Some(true))
    );
}

async fn another_tenants_qr_code_is_not_found(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let acme = app.create_org("starter").await;
    let rival = app.create_org("starter").await;
    acme.post(
        "/api/v1/widgets/01/sources",
        json!({"name": "A", "channel_category": "other", "generate_qr": true}),
    )
    .await;
    assert_eq!(
        download(&rival, "/api/v1/widgets/01/sources/02/qr.png")
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        download(&rival, "/api/v1/widgets/01/sources/02/qr.svg")
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    let (status, _) = rival.post_empty("/api/v1/widgets/01/sources/02/qr").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn codes_follow_brand_colour_and_site_url_changes_and_carry_etags(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let org = app.create_org("starter").await;
    org.post(
        "/api/v1/widgets/01/sources",
        json!({"name": "A", "channel_category": "other", "generate_qr": true}),
    )
    .await;
    let path = "/api/v1/widgets/01/sources/02/qr.png?size=256";
    let first = download(&org, path).await;
    let etag = first.headers()[ETAG].to_str().unwrap().to_owned();
    let again = org
        .app
        .client
        .get(format!("{}{path}", app.base))
        .bearer_auth(&org.key)
        .header(IF_NONE_MATCH, &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);

    org.patch("/api/v1/organization", json!({"brand_color": "#7B1FA2"}))
        .await;
    org.patch(
        "/api/v1/widgets/01",
        json!({"site_url": "https://new.example/estimate"}),
    )
    .await;
    let changed = org
        .app
        .client
        .get(format!("{}{path}", app.base))
        .bearer_auth(&org.key)
        .header(IF_NONE_MATCH, &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(
        changed.status(),
        StatusCode::OK,
        "a changed code is not 'not modified'"
    );
    assert_ne!(changed.headers()[ETAG].to_str().unwrap(), etag);
    let image = decode_png(&changed.bytes().await.unwrap());
    assert!(image.rgb.contains(&[0x7B, 0x1F, 0xA2]));
    assert_eq!(
        scan(&image),
        "https://new.example/estimate?roof-estimate=open&v=01&s=02"
    );
}

async fn a_brand_colour_too_light_to_scan_is_refused_with_the_reason(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let org = app.create_org("starter").await;
    let (status, err) = org
        .patch("/api/v1/organization", json!({"brand_color": "#FFD54F"}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("too light for a QR code")
    );
}

on_both_backends!(
    a_source_created_with_generate_qr_downloads_a_png_that_scans_to_its_tracking_url,
    dark_modules_are_the_brand_colour_on_white_with_a_quiet_zone,
    the_svg_encodes_the_same_url_in_the_brand_colour,
    download_file_names_follow_the_spec_and_keep_accents_and_emoji,
    png_size_must_be_between_256_and_4096,
    downloads_before_generation_are_404_and_the_system_source_has_none,
    another_tenants_qr_code_is_not_found,
    codes_follow_brand_colour_and_site_url_changes_and_carry_etags,
    a_brand_colour_too_light_to_scan_is_refused_with_the_reason,
);
