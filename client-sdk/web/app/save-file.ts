// Hands bytes made in the page to the browser as a downloaded file (an
// object URL on a temporary link), for attachments, audit exports and GDPR
// exports alike.

/** Saves `blob` as a file named `name` (the browser's download). */
export function saveFile(blob: Blob, name: string): void {
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  link.rel = "noopener";
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}
