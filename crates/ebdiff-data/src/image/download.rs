//! Downloading a dataset archive once, verified, and unpacking it.
//!
//! A download streams into `<file>.part` and becomes `<file>` only after its length and checksum
//! are right, so an interrupted or corrupted download never looks like a finished one.

use super::cifar10::{CIFAR10_BINARY_MD5, CIFAR10_BINARY_URL, SizeCheck, load_cifar10};
use super::dataset::{ImageDataset, Split};
use super::error::DataError;
use flate2::read::GzDecoder;
use indicatif::{ProgressBar, ProgressStyle};
use md5::Md5;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A file to download and how to recognise it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    pub url: String,
    /// Name of the file in the destination folder.
    pub file_name: String,
    /// Lowercase hex MD5 the file must have.
    pub md5: Option<String>,
    /// Lowercase hex SHA-256 the file must have.
    pub sha256: Option<String>,
    /// Exact size in bytes.
    pub size: Option<u64>,
}

impl Remote {
    /// The CIFAR-10 binary release (about 170 MB).
    pub fn cifar10_binary() -> Self {
        Remote {
            url: CIFAR10_BINARY_URL.into(),
            file_name: "cifar-10-binary.tar.gz".into(),
            md5: Some(CIFAR10_BINARY_MD5.into()),
            sha256: None,
            size: None,
        }
    }
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest silence in the middle of a download before giving up.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Downloads `remote` to `dest_dir/file_name` unless a file with the right size and checksums is
/// already there (any file of that name, when `remote` gives neither), and returns its path.
pub fn fetch(remote: &Remote, dest_dir: &Path, show_progress: bool) -> Result<PathBuf, DataError> {
    let dest = dest_dir.join(&remote.file_name);
    if dest.is_file() && check_file(&dest, remote).is_ok() {
        return Ok(dest);
    }
    std::fs::create_dir_all(dest_dir).map_err(|e| DataError::io(dest_dir, e))?;
    let part = dest_dir.join(format!("{}.part", remote.file_name));
    let result = download(remote, &dest, &part, show_progress);
    if result.is_err() {
        let _ = std::fs::remove_file(&part);
    }
    result?;
    std::fs::rename(&part, &dest).map_err(|e| DataError::io(&dest, e))?;
    Ok(dest)
}

/// Streams the body into `part`, then checks length and checksums; `dest` is only named in
/// errors.
fn download(
    remote: &Remote,
    dest: &Path,
    part: &Path,
    show_progress: bool,
) -> Result<(), DataError> {
    let network = |reason: String| DataError::Network {
        url: remote.url.clone(),
        dest: dest.to_path_buf(),
        reason,
    };
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(CONNECT_TIMEOUT)
        .timeout_read(READ_TIMEOUT)
        .build();
    let response = agent.get(&remote.url).call().map_err(|e| match e {
        ureq::Error::Status(code, r) => network(format!("HTTP {code} {}", r.status_text())),
        ureq::Error::Transport(t) => network(t.to_string()),
    })?;
    let content_length: Option<u64> = response
        .header("Content-Length")
        .and_then(|v| v.trim().parse().ok());
    let expected_len = content_length.or(remote.size);
    let truncated = |got: u64, expected: u64| DataError::Truncated {
        path: dest.to_path_buf(),
        got,
        expected,
    };

    let bar = progress_bar(show_progress, expected_len, &remote.file_name);
    let mut body = response.into_reader();
    let mut file = File::create(part).map_err(|e| DataError::io(part, e))?;
    let mut digests = Digests::new(remote);
    let mut buf = vec![0u8; 1 << 16];
    let mut got = 0u64;
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            // A connection closed before Content-Length bytes is a truncation, not a network
            // failure: say how much arrived.
            Err(_) if expected_len.is_some_and(|e| got < e) => {
                return Err(truncated(got, expected_len.unwrap_or_default()));
            }
            Err(e) => return Err(network(format!("after {got} bytes: {e}"))),
        };
        file.write_all(&buf[..n])
            .map_err(|e| DataError::io(part, e))?;
        digests.update(&buf[..n]);
        got += n as u64;
        bar.inc(n as u64);
    }
    file.sync_all().map_err(|e| DataError::io(part, e))?;
    bar.finish_and_clear();

    for expected in [content_length, remote.size].into_iter().flatten() {
        if got < expected {
            return Err(truncated(got, expected));
        }
        if got > expected {
            return Err(DataError::bad_format(
                dest,
                format!("{expected} bytes"),
                format!("{got} bytes"),
            ));
        }
    }
    digests.check(remote, dest)
}

fn progress_bar(show: bool, len: Option<u64>, name: &str) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let (bar, template) = match len {
        Some(len) => (
            ProgressBar::new(len),
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
        ),
        None => (
            ProgressBar::no_length(),
            "{msg} {spinner} {bytes} {bytes_per_sec}",
        ),
    };
    let style = ProgressStyle::with_template(template)
        .expect("valid template")
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_message(name.to_string());
    bar
}

/// Checksums of a stream, for the algorithms a [`Remote`] names.
struct Digests {
    md5: Option<Md5>,
    sha256: Option<Sha256>,
}

impl Digests {
    fn new(remote: &Remote) -> Self {
        Digests {
            md5: remote.md5.as_ref().map(|_| Md5::new()),
            sha256: remote.sha256.as_ref().map(|_| Sha256::new()),
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        if let Some(h) = &mut self.md5 {
            h.update(bytes);
        }
        if let Some(h) = &mut self.sha256 {
            h.update(bytes);
        }
    }

    fn check(self, remote: &Remote, path: &Path) -> Result<(), DataError> {
        let got = [
            (
                "SHA-256",
                remote.sha256.as_ref(),
                self.sha256.map(|h| hex(&h.finalize())),
            ),
            (
                "MD5",
                remote.md5.as_ref(),
                self.md5.map(|h| hex(&h.finalize())),
            ),
        ];
        for (algorithm, expected, got) in got {
            if let (Some(expected), Some(got)) = (expected, got)
                && !expected.eq_ignore_ascii_case(&got)
            {
                return Err(DataError::Checksum {
                    path: path.to_path_buf(),
                    algorithm,
                    expected: expected.clone(),
                    got,
                });
            }
        }
        Ok(())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether an existing file has the size and checksums `remote` asks for.
fn check_file(path: &Path, remote: &Remote) -> Result<(), DataError> {
    let mut file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut digests = Digests::new(remote);
    let mut buf = vec![0u8; 1 << 16];
    let mut len = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(|e| DataError::io(path, e))?;
        if n == 0 {
            break;
        }
        digests.update(&buf[..n]);
        len += n as u64;
    }
    if let Some(size) = remote.size.filter(|&s| s != len) {
        return Err(DataError::bad_format(
            path,
            format!("{size} bytes"),
            format!("{len} bytes"),
        ));
    }
    digests.check(remote, path)
}

/// Unpacks a `.tar.gz` into `dest_dir`. Entries are first unpacked into a hidden folder next to
/// them and moved into place only when the whole archive has been read, so an interrupted
/// extraction leaves no half-filled dataset folder behind.
pub fn extract_tar_gz(archive: &Path, dest_dir: &Path) -> Result<(), DataError> {
    let name = archive.file_name().unwrap_or_default().to_string_lossy();
    let staging = dest_dir.join(format!(".{name}.extracting"));
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(|e| DataError::io(&staging, e))?;
    }
    std::fs::create_dir_all(&staging).map_err(|e| DataError::io(&staging, e))?;
    let file = File::open(archive).map_err(|e| DataError::io(archive, e))?;
    // `unpack` refuses entries that would land outside `staging` (absolute paths, `..`).
    let unpacked = tar::Archive::new(GzDecoder::new(BufReader::new(file)))
        .unpack(&staging)
        .map_err(|e| DataError::bad_format(archive, "a complete .tar.gz archive", e.to_string()));
    let moved = unpacked.and_then(|()| move_entries(&staging, dest_dir, archive));
    let _ = std::fs::remove_dir_all(&staging);
    moved
}

fn move_entries(from: &Path, to: &Path, archive: &Path) -> Result<(), DataError> {
    let entries = std::fs::read_dir(from).map_err(|e| DataError::io(from, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| DataError::io(from, e))?;
        let target = to.join(entry.file_name());
        if target.exists() {
            return Err(DataError::invalid(
                target.display().to_string(),
                format!(
                    "already exists: delete it to extract {} again",
                    archive.display()
                ),
            ));
        }
        std::fs::rename(entry.path(), &target).map_err(|e| DataError::io(&target, e))?;
    }
    Ok(())
}

/// CIFAR-10 from `root`, downloading and unpacking `remote` first when neither
/// `root/cifar-10-batches-bin` nor `root/cifar-10-batches-py` exists.
pub fn ensure_cifar10(
    root: &Path,
    remote: &Remote,
    split: Split,
    check: SizeCheck,
    show_progress: bool,
) -> Result<ImageDataset, DataError> {
    let present = ["cifar-10-batches-bin", "cifar-10-batches-py"]
        .iter()
        .any(|d| root.join(d).is_dir());
    if !present {
        let archive = fetch(remote, root, show_progress)?;
        extract_tar_gz(&archive, root)?;
    }
    load_cifar10(root, split, check)
}

/// Extracts the entries of a zip archive whose names pass `keep` into `dest_dir` (flat: by their
/// file name), each through a temporary name. Returns the written paths, in archive order.
pub fn extract_zip_entries(
    archive: &Path,
    keep: impl Fn(&str) -> bool,
    dest_dir: &Path,
) -> Result<Vec<PathBuf>, DataError> {
    let file = File::open(archive).map_err(|e| DataError::io(archive, e))?;
    let mut zip = zip::ZipArchive::new(file)
        .map_err(|e| DataError::bad_format(archive, "a zip archive", e.to_string()))?;
    std::fs::create_dir_all(dest_dir).map_err(|e| DataError::io(dest_dir, e))?;
    let mut written = Vec::new();
    for i in 0..zip.len() {
        let mut entry = zip
            .by_index(i)
            .map_err(|e| DataError::bad_format(archive, "a readable zip entry", e.to_string()))?;
        let name = entry.name().to_string();
        let Some(base) = Path::new(&name).file_name() else {
            continue;
        };
        if entry.is_dir() || !keep(&name) {
            continue;
        }
        let dest = dest_dir.join(base);
        let part = dest_dir.join(format!("{}.part", base.to_string_lossy()));
        let mut out = File::create(&part).map_err(|e| DataError::io(&part, e))?;
        std::io::copy(&mut entry, &mut out).map_err(|e| {
            let _ = std::fs::remove_file(&part);
            DataError::bad_format(archive, format!("a complete entry {name}"), e.to_string())
        })?;
        std::fs::rename(&part, &dest).map_err(|e| DataError::io(&dest, e))?;
        written.push(dest);
    }
    if written.is_empty() {
        return Err(DataError::bad_format(
            archive,
            "the expected entries",
            "none of them",
        ));
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::cifar10::fake::{assert_is_fake, write_binary_release};
    use std::net::TcpListener;

    /// Serves one HTTP/1.1 response per connection, in order, on a loopback port; returns the
    /// base URL. Each response is sent whole, then the connection is closed.
    fn serve(responses: Vec<Vec<u8>>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for response in responses {
                let (mut stream, _) = listener.accept().unwrap();
                let mut request = Vec::new();
                let mut byte = [0u8; 1];
                while !request.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap() == 1 {
                    request.push(byte[0]);
                }
                // The client may hang up early (e.g. on a short body); that is the test's
                // business, not the server's.
                let _ = stream.write_all(&response);
            }
        });
        url
    }

    /// A 200 response announcing `announced` bytes and sending `body`.
    fn response(body: &[u8], announced: usize) -> Vec<u8> {
        let mut r = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/gzip\r\nContent-Length: {announced}\r\n\
             Connection: close\r\n\r\n"
        )
        .into_bytes();
        r.extend_from_slice(body);
        r
    }

    /// A fake binary release of 7 records per batch, as a .tar.gz.
    fn fake_archive() -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        write_binary_release(dir.path(), 7);
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut tar = tar::Builder::new(gz);
        tar.append_dir_all(
            "cifar-10-batches-bin",
            dir.path().join("cifar-10-batches-bin"),
        )
        .unwrap();
        tar.into_inner().unwrap().finish().unwrap()
    }

    fn remote(url: String, archive: &[u8]) -> Remote {
        Remote {
            url: format!("{url}/cifar-10-binary.tar.gz"),
            file_name: "cifar-10-binary.tar.gz".into(),
            md5: Some(hex(&Md5::digest(archive))),
            sha256: Some(hex(&Sha256::digest(archive))),
            size: Some(archive.len() as u64),
        }
    }

    fn refused_url() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        url
    }

    #[test]
    fn downloads_verifies_extracts_and_loads_then_skips_the_download() {
        let archive = fake_archive();
        let root = tempfile::tempdir().unwrap();
        let remote = remote(serve(vec![response(&archive, archive.len())]), &archive);
        let train =
            ensure_cifar10(root.path(), &remote, Split::Train, SizeCheck::Relaxed, true).unwrap();
        assert_is_fake(&train, Split::Train, 7);
        let test = load_cifar10(root.path(), Split::Test, SizeCheck::Relaxed).unwrap();
        assert_is_fake(&test, Split::Test, 7);
        assert!(!root.path().join("cifar-10-binary.tar.gz.part").exists());
        assert!(
            !root
                .path()
                .join(".cifar-10-binary.tar.gz.extracting")
                .exists()
        );

        // The verified archive is kept: fetching again needs no server.
        let offline = Remote {
            url: refused_url(),
            ..remote
        };
        let path = fetch(&offline, root.path(), false).unwrap();
        assert_eq!(std::fs::read(path).unwrap(), archive);
    }

    #[test]
    fn wrong_checksum_names_both_sums_and_leaves_no_file() {
        let archive = fake_archive();
        let root = tempfile::tempdir().unwrap();
        let mut remote = remote(serve(vec![response(&archive, archive.len())]), &archive);
        let actual = remote.md5.take().unwrap();
        remote.sha256 = None;
        remote.md5 = Some("0123456789abcdef0123456789abcdef".into());
        let err = fetch(&remote, root.path(), false).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::Checksum {
                    algorithm: "MD5",
                    ..
                }
            ),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains("0123456789abcdef0123456789abcdef") && msg.contains(&actual),
            "{msg}"
        );
        assert_eq!(
            std::fs::read_dir(root.path()).unwrap().count(),
            0,
            "files left behind"
        );
    }

    #[test]
    fn short_body_is_a_truncated_download() {
        let archive = fake_archive();
        let root = tempfile::tempdir().unwrap();
        let half = archive.len() / 2;
        let mut remote = remote(
            serve(vec![response(&archive[..half], archive.len())]),
            &archive,
        );
        remote.size = None; // Content-Length alone must catch it.
        let err = fetch(&remote, root.path(), false).unwrap_err();
        match &err {
            DataError::Truncated {
                path,
                got,
                expected,
            } => {
                assert_eq!(path, &root.path().join("cifar-10-binary.tar.gz"));
                assert_eq!((*got, *expected), (half as u64, archive.len() as u64));
            }
            other => panic!("expected Truncated, got {other:?}"),
        }
        assert!(err.to_string().contains(&format!("got {half} bytes")));
        assert_eq!(
            std::fs::read_dir(root.path()).unwrap().count(),
            0,
            "files left behind"
        );
    }

    #[test]
    fn refused_connection_names_the_url_and_where_to_put_the_file() {
        let root = tempfile::tempdir().unwrap();
        let remote = remote(refused_url(), b"unused");
        let err = ensure_cifar10(root.path(), &remote, Split::Train, SizeCheck::Strict, false)
            .unwrap_err();
        assert!(matches!(err, DataError::Network { .. }), "{err:?}");
        let msg = err.to_string();
        let dest = root.path().join("cifar-10-binary.tar.gz");
        assert!(msg.contains(&remote.url), "{msg}");
        assert!(
            msg.contains(&format!(
                "download it by hand and put it at {}",
                dest.display()
            )),
            "{msg}"
        );
    }

    #[test]
    fn http_error_status_is_a_network_error_with_the_status() {
        let root = tempfile::tempdir().unwrap();
        let not_found = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        let remote = remote(serve(vec![not_found.to_vec()]), b"unused");
        let msg = fetch(&remote, root.path(), false).unwrap_err().to_string();
        assert!(msg.contains("404") && msg.contains(&remote.url), "{msg}");
    }

    #[test]
    fn corrupt_archive_names_the_archive_and_extracts_nothing() {
        let archive = fake_archive();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("broken.tar.gz");
        std::fs::write(&path, &archive[..archive.len() / 3]).unwrap();
        let err = extract_tar_gz(&path, dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("broken.tar.gz") && err.contains(".tar.gz archive"),
            "{err}"
        );
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "only the archive itself remains");
    }
}
