// No read rule matches *.ts in the demo policy, so this file is invisible to clients.
export const greeting = 'hello';
